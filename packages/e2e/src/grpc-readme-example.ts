import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import { fixtures, openDirectoryService } from "@castore-ts/core";
import { createDirectoryServiceServer } from "@castore-ts/backend-grpc"; // also registers grpc+http, grpc+https, grpc+unix

export async function main(): Promise<string[]> {
  // Serve any DirectoryService: here an in-memory one, on a free TCP port.
  const server = createDirectoryServiceServer(new MemoryDirectoryService(), {
    listen: { host: "127.0.0.1", port: 0 }, // or { path: "/run/castore.sock" }
  });
  await server.listen();

  // Talk to it (or to a tvix/snix server) by URL: grpc+http://127.0.0.1:PORT
  const remote = await openDirectoryService(server.url!);
  const seen: string[] = [];
  try {
    const putter = remote.putMultipleStart(); // one Put stream, leaves to root
    await putter.put(fixtures.DIRECTORY_A);
    await putter.put(fixtures.DIRECTORY_B);
    const root = await putter.close();
    for await (const directory of remote.getRecursive(root)) {
      seen.push(`${directory.directories.length} child directories`);
    }
  } finally {
    await remote.close();
    await server.close({ deadlineMs: 5_000 }); // lets running calls finish, then closes the backend
  }
  return seen;
}
