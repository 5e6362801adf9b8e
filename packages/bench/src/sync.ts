/**
 * `castore sync` of directories (spec §3.5, §3.6): a generated tree of
 * 100 000 directories (CASTORE_BENCH_SYNC_DIRECTORIES) copied from an lmdb
 * store into an empty one, and then, after one path of it changed in the
 * source (a new file in one leaf: new directories from that leaf to the
 * root), the new tree into the store that holds the old one. Each into a
 * local lmdb store and into `castore serve --store lmdb://…` over loopback.
 * Reported: the incremental sync against the full one (its speed-up), with
 * the directories each sent and the directories asked about.
 * Run: pnpm bench sync (root), or node dist/sync.js here.
 */
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mkdtempSync } from "node:fs";
import {
  Digest,
  type Directory,
  type DirectoryService,
  directoryDigest,
  directorySize,
  hasDirectories,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  missingTopDown,
  openDirectoryService,
} from "@castore-ts/core";
import "@castore-ts/backend-lmdb";
import "@castore-ts/backend-grpc";
import { syncRoots } from "@castore-ts/cli";
import { generateTree } from "@castore-ts/conformance";
import { startCastoreServe } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";
import { recordBenchResults, type BenchResult } from "./results.js";
import { loadAverage, timeSeconds } from "./timing.js";

const DIRECTORIES = Number(process.env.CASTORE_BENCH_SYNC_DIRECTORIES ?? 100_000);

/** Uploads directories (leaves to root) as one upload, partial when `partial`. */
async function upload(service: DirectoryService, directories: Directory[], partial = false): Promise<Digest> {
  const putter = service.putMultipleStart({ partial });
  for (const d of directories) await putter.put(d);
  return putter.close();
}

/**
 * The tree with one file added to its first leaf: the new directories from
 * that leaf up to the root, leaves to root (a partial upload of them needs
 * nothing else).
 */
function editOnePath(directories: Directory[]): Directory[] {
  const digests = directories.map((d) => directoryDigest(d).hex);
  const parentOf = new Map<string, number>();
  directories.forEach((d, i) => {
    for (const c of d.directories) parentOf.set(Buffer.from(c.digest).toString("hex"), i);
  });
  let index = directories.findIndex((d) => d.directories.length === 0);
  let changed = makeDirectory({
    ...directories[index],
    files: [...directories[index].files, makeFileNode("~edited", Digest.of(new TextEncoder().encode("edited")), 6)],
  });
  const out = [changed];
  for (;;) {
    const parent = parentOf.get(digests[index]);
    if (parent === undefined) return out;
    const old = digests[index];
    const p = directories[parent];
    changed = makeDirectory({
      ...p,
      directories: p.directories.map((c) =>
        Buffer.from(c.digest).toString("hex") === old
          ? makeDirectoryNode(c.name, directoryDigest(changed), directorySize(changed))
          : c,
      ),
    });
    out.push(changed);
    index = parent;
  }
}

const scratch = mkdtempSync(join(tmpdir(), "castore-bench-sync-"));
const results: BenchResult[] = [];
try {
  const tree = generateTree({ directories: DIRECTORIES, seed: 10 });
  const src = await openDirectoryService(`lmdb://${join(scratch, "src")}`);
  await upload(src, tree.directories);
  const editedPath = editOnePath(tree.directories);
  const editedRoot = await upload(src, editedPath, true);
  // The new tree's directories by hex digest: the old ones, and the new path.
  const byHex = new Map<string, Directory>();
  for (const d of [...tree.directories, ...editedPath]) byHex.set(directoryDigest(d).hex, d);
  for (const target of ["lmdb", "grpc"] as const) {
    const path = join(scratch, `dst-${target}`);
    const server =
      target === "grpc"
        ? await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", `lmdb://${path}`])
        : undefined;
    const dst = await openDirectoryService(server ? server.url : `lmdb://${path}`);
    try {
      const side = (directories: DirectoryService) => ({ directories });
      let full = 0;
      let incremental = 0;
      const fullSeconds = await timeSeconds(async () => {
        full = (await syncRoots(side(src), side(dst), [{ digest: tree.root }])).directoriesSent;
      });
      // Before it: the two ways to learn what the destination lacks of the new tree (spec §3.5).
      const childrenOf = (d: Digest) => byHex.get(d.hex)?.directories.map((c) => c.digest) ?? [];
      let lacking = 0;
      const topDownSeconds = await timeSeconds(async () => {
        lacking = (await missingTopDown(dst, editedRoot, childrenOf)).size;
      });
      const everyDigest = [...byHex.keys()].map((hex) => Digest.parse(hex));
      const allAtOnceSeconds = await timeSeconds(() => hasDirectories(dst, everyDigest));
      results.push({
        name: `sync: what a store holding all but one changed path lacks, top down vs every digest in one question (${target})`,
        value: topDownSeconds,
        unit: "s",
        baseline: allAtOnceSeconds,
        ratio: allAtOnceSeconds / topDownSeconds,
        notes:
          `missingTopDown (one has per level, nothing below a stored directory: found ${lacking} missing) vs ` +
          `has() of all ${everyDigest.length} digests of the new tree (${everyDigest.length * 34} bytes of digests in the question) ` +
          `against ${target === "grpc" ? "castore serve --store lmdb:// over loopback" : "a local lmdb store"}; ratio = speed-up; load average ${loadAverage()}`,
      });
      const incrementalSeconds = await timeSeconds(async () => {
        incremental = (await syncRoots(side(src), side(dst), [{ digest: editedRoot }])).directoriesSent;
      });
      if (full !== DIRECTORIES || incremental !== editedPath.length)
        throw new Error(
          `sent ${full} then ${incremental} directories; expected ${DIRECTORIES} then ${editedPath.length}`,
        );
      const where = target === "grpc" ? "castore serve --store lmdb:// over loopback" : "a local lmdb store";
      console.log(
        `${target}: full ${fullSeconds.toFixed(2)} s (${full} directories), one changed path ${incrementalSeconds.toFixed(3)} s (${incremental} directories)`,
      );
      results.push({
        name: `sync: one changed path of a ${DIRECTORIES / 1000}k-directory tree into ${target} holding the rest vs the full sync`,
        value: incrementalSeconds,
        unit: "s",
        baseline: fullSeconds,
        ratio: fullSeconds / incrementalSeconds,
        notes:
          `generateTree({ directories: ${DIRECTORIES}, seed: 10 }) in lmdb (${(tree.encodedBytes / 2 ** 20).toFixed(1)} MiB encoded), ` +
          `synced into ${where}: full sync ${fullSeconds.toFixed(2)} s sending ${full} directories; then one file added to one leaf ` +
          `(${editedPath.length} new directories, root to that leaf), synced in ${incrementalSeconds.toFixed(3)} s sending ${incremental}; ` +
          `ratio = speed-up; both read the source's whole closure; directories only; ${tmpdir()}; load average ${loadAverage()}`,
      });
    } finally {
      await dst.close();
      server?.stop();
    }
  }
  await src.close();
} finally {
  await rm(scratch, { recursive: true, force: true });
}
recordBenchResults(results);
