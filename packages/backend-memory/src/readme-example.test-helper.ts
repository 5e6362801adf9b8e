import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import { fixtures, openDirectoryService } from "@castore-ts/core";

const service = new MemoryDirectoryService(); // or: await openDirectoryService("memory://")
const putter = service.putMultipleStart(); // one upload, leaves to root
await putter.put(fixtures.DIRECTORY_A);
await putter.put(fixtures.DIRECTORY_B);
const root = await putter.close(); // visible from here on, all at once
for await (const directory of service.getRecursive(root)) console.log(directory);

const other = await openDirectoryService("memory://"); // a new, empty store
console.log(await other.get(root)); // undefined
