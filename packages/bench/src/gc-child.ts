/**
 * One collection, measured in a process of its own (so its peak RSS is its
 * own): builds a store of CASTORE_BENCH_GC_DIRECTORIES directories (two
 * generated trees of half as many each), then times
 * `collect({ graceMs: 0, keep: [one root] })`, which must delete the other half. Prints one
 * JSON line. Run by gc.ts; argument: the store URL (memory:// builds an
 * in-process memory store).
 */
import { readFileSync, writeFileSync } from "node:fs";
import "@castore-ts/backend-lmdb";
import "@castore-ts/backend-postgres";
import "@castore-ts/backend-s3";
import { openMemoryStore } from "@castore-ts/backend-memory";
import {
  type DirectoryService,
  type GarbageCollector,
  openDirectoryService,
  openGarbageCollector,
} from "@castore-ts/core";
import { encodeAndHashLoop } from "./timing.js";
import { generatedTree } from "./trees.js";

const url = process.argv[2];
const total = Number(process.env.CASTORE_BENCH_GC_DIRECTORIES ?? 1_000_000);

/** KiB fields of /proc/self/status. */
function status(field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync("/proc/self/status", "utf8"));
  return Number(m?.[1] ?? NaN);
}

let directories: DirectoryService;
let gc: GarbageCollector;
if (url === "memory://") {
  ({ directories, gc } = openMemoryStore());
} else {
  directories = await openDirectoryService(url);
  gc = await openGarbageCollector(url);
}

let live: ReturnType<typeof generatedTree> | undefined = generatedTree(total / 2, 1);
let garbage: ReturnType<typeof generatedTree> | undefined = generatedTree(total / 2, 2);
const loopStart = performance.now();
encodeAndHashLoop(live.directories);
encodeAndHashLoop(garbage.directories);
const loopSeconds = (performance.now() - loopStart) / 1000;
for (const tree of [live, garbage]) {
  const putter = directories.putMultipleStart();
  for (const d of tree.directories) await putter.put(d);
  await putter.close();
}
const liveRoot = live.root;
live = garbage = undefined;
(globalThis as { gc?: () => void }).gc?.();
// Resets VmHWM to the current RSS (Linux ≥ 4.0), so the peak below is the collection's.
writeFileSync("/proc/self/clear_refs", "5");
const rssBefore = status("VmRSS");
const started = performance.now();
// The live half is kept by `keep` (a ref would refuse it: the generated trees' file blobs are not stored).
const report = await gc.collect({ graceMs: 0, keep: [liveRoot] });
const seconds = (performance.now() - started) / 1000;
const peak = status("VmHWM");
const stillThere = await directories.get(liveRoot);
if (!stillThere) throw new Error("the collection deleted the referenced tree's root");
console.log(
  JSON.stringify({
    total,
    loopSeconds,
    seconds,
    rssBeforeKiB: rssBefore,
    peakKiB: peak,
    live: report.live.directory,
    deleted: report.deleted.directory,
  }),
);
await Promise.all([directories.close(), gc.close()]);
process.exit(0);
