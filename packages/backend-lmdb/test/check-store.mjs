#!/usr/bin/env node
// Child process for src/processes.test.ts: opens a store (dist/), checks that
// every stored directory reads back (core re-hashes it) and that every child
// directory it names is stored, then prints {"directories":N,"roots":[…]} —
// roots being the stored directories no other stored directory refers to.
//
//   node test/check-store.mjs <store-path>
import { LmdbDirectoryService } from "../dist/index.js";

const service = await LmdbDirectoryService.open(process.argv[2]);
try {
  const digests = [];
  const stored = new Set();
  for await (const d of service.listDigests()) {
    digests.push(d);
    stored.add(d.hex);
  }
  const referenced = new Set();
  for (const digest of digests) {
    const directory = await service.get(digest);
    if (!directory) throw new Error(`listed directory ${digest} cannot be read`);
    for (const child of directory.directories) {
      const hex = Buffer.from(child.digest).toString("hex");
      if (!stored.has(hex)) throw new Error(`stored directory ${digest} refers to ${hex}, which is not stored`);
      referenced.add(hex);
    }
  }
  const roots = [...stored].filter((hex) => !referenced.has(hex)).sort();
  process.stdout.write(`${JSON.stringify({ directories: digests.length, roots })}\n`);
} finally {
  await service.close();
}
// Exit explicitly: see upload-loop.mjs (nodejs/node#54918).
process.exit(0);
