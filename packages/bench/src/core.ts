/**
 * Core benchmark: directories per second through decode + validate + digest
 * (what every read does), against a bare encode + BLAKE3 loop over the same
 * directories in the same run. Run: pnpm bench core (root; in packages/bench:
 * node dist/core.js).
 */
import { toBinary, fromBinary } from "@bufbuild/protobuf";
import {
  blake3,
  compareBytes,
  decodeDirectory,
  decodeStoredDirectory,
  Digest,
  encodeDirectory,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
  type Directory,
} from "@castore-ts/core";
import { DirectorySchema } from "@castore-ts/proto";
import { bestRate, recordBenchResults } from "./results.js";

const COUNT = Number(process.env.CASTORE_BENCH_DIRECTORIES ?? 100_000);
const ROUNDS = 5;

/** Deterministic pseudo-random directories shaped like real ones: mostly files, some subdirectories and symlinks. */
function generate(count: number): Directory[] {
  let seed = 42;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return seed % n;
  };
  const words = [
    "lib",
    "share",
    "doc",
    "bin",
    "include",
    "man",
    "locale",
    "python3",
    "node_modules",
    "index",
    "README",
    "LICENSE",
  ];
  const name = (i: number) => Buffer.from(`${words[rand(words.length)]}-${i}${rand(3) === 0 ? ".txt" : ""}`);
  const digest = () => blake3(Buffer.from(String(rand(1e9))));
  const out: Directory[] = [];
  for (let i = 0; i < count; i++) {
    const entries = rand(4) === 0 ? 0 : 1 + rand(12);
    const names = Array.from({ length: entries }, (_, j) => name(j)).sort(compareBytes);
    const d = makeDirectory();
    for (const n of names) {
      const kind = rand(10);
      if (kind < 6) d.files.push(makeFileNode(n, digest(), rand(1 << 20), rand(5) === 0));
      else if (kind < 9) d.directories.push(makeDirectoryNode(n, digest(), rand(100)));
      else d.symlinks.push(makeSymlinkNode(n, `../${words[rand(words.length)]}/target`));
    }
    out.push(d);
  }
  return out;
}

const directories = generate(COUNT);
const encoded = directories.map(encodeDirectory);
const digests = encoded.map((b) => Digest.of(b));
const meanBytes = encoded.reduce((n, b) => n + b.length, 0) / COUNT;

const bare = await bestRate(COUNT, ROUNDS, () => {
  for (const d of directories) blake3(encodeDirectory(d));
});
const read = await bestRate(COUNT, ROUNDS, () => {
  for (let i = 0; i < COUNT; i++) decodeStoredDirectory(digests[i], encoded[i]);
});
const hashOnly = await bestRate(COUNT, ROUNDS, () => {
  for (const b of encoded) blake3(b);
});
const esEncode = await bestRate(COUNT, ROUNDS, () => {
  for (const d of directories) toBinary(DirectorySchema, d);
});
const ourEncode = await bestRate(COUNT, ROUNDS, () => {
  for (const d of directories) encodeDirectory(d);
});
const esDecode = await bestRate(COUNT, ROUNDS, () => {
  for (const b of encoded) fromBinary(DirectorySchema, b);
});
const ourDecode = await bestRate(COUNT, ROUNDS, () => {
  for (const b of encoded) decodeDirectory(b);
});

const notes = `${COUNT} directories, mean ${meanBytes.toFixed(0)} bytes encoded`;
recordBenchResults([
  {
    name: "core: decode+validate+digest vs bare encode+BLAKE3",
    value: read,
    unit: "directories/s",
    baseline: bare,
    ratio: read / bare,
    notes,
  },
  {
    name: "core: BLAKE3 (blake3-wasm) of encoded directories",
    value: hashOnly,
    unit: "directories/s",
    baseline: null,
    ratio: null,
    notes,
  },
  {
    name: "core: canonical encode vs protobuf-es toBinary",
    value: ourEncode,
    unit: "directories/s",
    baseline: esEncode,
    ratio: ourEncode / esEncode,
    notes,
  },
  {
    name: "core: strict decode vs protobuf-es fromBinary",
    value: ourDecode,
    unit: "directories/s",
    baseline: esDecode,
    ratio: ourDecode / esDecode,
    notes,
  },
]);
