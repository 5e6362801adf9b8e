#!/usr/bin/env node
// Child process for the multi-process and crash tests (src/processes.test.ts).
// Runs against the *built* package (dist/), as a separate program would.
//
//   node test/upload-loop.mjs <store-path> <tag> <uploads> <directories-per-upload>
//
// Uploads <uploads> closures (0 = until killed). Each closure is a random tree
// of about <directories-per-upload> directories unique to this <tag>, plus a
// shared subtree that every process builds identically (so concurrent
// processes upload overlapping trees). Prints one line per event:
//   closing <root-hex> <count>    before putter.close() (the commit)
//   committed <root-hex> <count>  after it resolved: the closure is stored
import {
  Digest,
  directoryDigest,
  directorySize,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
} from "@castore-ts/core";
import { LmdbDirectoryService } from "../dist/index.js";

const [path, tag, uploadsArg, sizeArg] = process.argv.slice(2);
const uploads = Number(uploadsArg);
const size = Number(sizeArg);

let seed = [...tag].reduce((h, c) => (Math.imul(h, 31) + c.charCodeAt(0)) | 0, 7) >>> 0;
const rand = (n) => {
  seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
  return seed % n;
};
const blob = Digest.of(new Uint8Array(0));
const node = (name, d) => makeDirectoryNode(name, directoryDigest(d), directorySize(d));

/** A random tree of about `n` directories, leaves to root; every directory has a file unique to `label`. */
function tree(label, n) {
  const out = [];
  let pending = []; // subtrees not yet attached: [name, directory]
  for (let i = 0; i < n; i++) {
    const take = Math.min(pending.length, rand(4));
    const children = pending.splice(0, take).map(([, d], j) => node(`d${j}`, d));
    const d = makeDirectory({
      directories: children,
      files: [makeFileNode(`f-${label}-${i}`, blob, 0)],
      symlinks: rand(3) === 0 ? [makeSymlinkNode("s", "../x")] : [],
    });
    out.push(d);
    pending.push([`d${i}`, d]);
  }
  const root = makeDirectory({
    directories: pending.map(([, d], j) => node(`r${String(j).padStart(6, "0")}`, d)),
    files: [makeFileNode(`root-${label}`, blob, 0)],
  });
  out.push(root);
  return out;
}

// Built with its own generator state so every process builds the same shared tree.
const savedSeed = seed;
seed = 12345;
const shared = tree("shared", Math.max(8, size >> 3));
seed = savedSeed;

const service = await LmdbDirectoryService.open(path);
for (let u = 0; uploads === 0 || u < uploads; u++) {
  const own = tree(`${tag}-${u}-${rand(1e9)}`, size);
  const sharedRoot = shared[shared.length - 1];
  const ownRoot = own[own.length - 1];
  const root = makeDirectory({ directories: [node("own", ownRoot), node("shared", sharedRoot)] });
  const all = [...own, ...shared, root]; // own first: a partial write would leave orphans at once
  const putter = service.putMultipleStart();
  for (const d of all) await putter.put(d);
  const count = new Set(all.map((d) => directoryDigest(d).hex)).size;
  const hex = directoryDigest(root).hex;
  process.stdout.write(`closing ${hex} ${count}\n`);
  await putter.close();
  process.stdout.write(`committed ${hex} ${count}\n`);
}
await service.close();
// Exit explicitly: Node 20 can deadlock when a process ends by running out of
// work (nodejs/node#54918), and the test would wait for this exit forever.
process.exit(0);
