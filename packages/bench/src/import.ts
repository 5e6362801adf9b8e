/**
 * Import benchmark (not a test): importTree over a generated tree of many
 * small files (the per-file cost), into memory:// and lmdb://: hashing the
 * files only (`castore import --no-contents`), and storing their contents
 * as blobs too (`castore import`), as the CLI does into a local store.
 *
 *   pnpm bench import                  (root; in packages/bench: node dist/import.js)
 *   CASTORE_IMPORT_BENCH_FILES=20000 CASTORE_IMPORT_BENCH_ROUNDS=3 node dist/import.js
 *
 * Records files/s (best of the rounds; the process's read threads, started
 * by the first round, are kept for the later ones, as in any long-lived
 * process that imports more than once; the tree is in the page cache after
 * the first) in bench-results.json, against a baseline measured in the same
 * run: a bare loop reading each file with readFileSync and hashing it with
 * BLAKE3, no walk, no directories, no store.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BlobService, blake3, openBlobService, openDirectoryService } from "@castore-ts/core";
import "@castore-ts/backend-memory";
import "@castore-ts/backend-lmdb";
import { LOCAL_UPLOAD_CONCURRENCY, importTree } from "@castore-ts/cli";
import { recordBenchResults, type BenchResult } from "./results.js";
import { loadAverage } from "./timing.js";

const FILES = Number(process.env.CASTORE_IMPORT_BENCH_FILES ?? 20_000);
const ROUNDS = Number(process.env.CASTORE_IMPORT_BENCH_ROUNDS ?? 3);
const PER_DIRECTORY = 100;

/** FILES files of 0–4 KiB, 100 per directory, under 20 top-level directories; every tenth executable. */
function makeTree(root: string): number {
  let seed = 1;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  let bytes = 0;
  for (let i = 0; i < FILES; i++) {
    const d = Math.floor(i / PER_DIRECTORY);
    const directory = join(root, `d${d % 20}`, `s${d}`);
    if (i % PER_DIRECTORY === 0) mkdirSync(directory, { recursive: true });
    const size = Math.floor(random() * 4096);
    const content = Buffer.alloc(size);
    for (let k = 0; k < size; k += 64) content[k] = (random() * 256) | 0;
    const path = join(directory, `f${i % PER_DIRECTORY}.txt`);
    writeFileSync(path, content);
    if (i % 10 === 0) chmodSync(path, 0o755);
    bytes += size;
  }
  return bytes;
}

function bareLoop(root: string): number {
  let n = 0;
  for (const top of readdirSync(root)) {
    for (const sub of readdirSync(join(root, top))) {
      const directory = join(root, top, sub);
      for (const name of readdirSync(directory)) {
        blake3(readFileSync(join(directory, name)));
        n++;
      }
    }
  }
  return n;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "castore-import-bench-"));
  try {
    const tree = join(dir, "tree");
    const bytes = makeTree(tree);
    let baseline = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now();
      const n = bareLoop(tree);
      baseline = Math.max(baseline, n / ((performance.now() - t0) / 1000));
    }
    const results: BenchResult[] = [];
    for (const contents of [false, true]) {
      for (const backend of ["memory", "lmdb"]) {
        let best = 0;
        for (let r = 0; r < ROUNDS; r++) {
          const url = backend === "memory" ? "memory://" : `lmdb://${join(dir, `lmdb-${contents ? "c" : "h"}-${r}`)}`;
          const service = await openDirectoryService(url);
          const blobs: BlobService | undefined = contents ? await openBlobService(url) : undefined;
          const t0 = performance.now();
          const { progress } = await importTree(service, tree, { blobs, uploadConcurrency: LOCAL_UPLOAD_CONCURRENCY });
          const seconds = (performance.now() - t0) / 1000;
          await blobs?.close();
          await service.close();
          if (progress.files !== FILES) throw new Error(`imported ${progress.files} files, expected ${FILES}`);
          if (contents && progress.blobs!.uploaded + progress.blobs!.skipped !== FILES)
            throw new Error(
              `stored or found ${progress.blobs!.uploaded + progress.blobs!.skipped} blobs, expected ${FILES}`,
            );
          best = Math.max(best, FILES / seconds);
        }
        results.push({
          // The rows without contents keep their names: earlier results compare with them.
          name: `import: ${backend} small files${contents ? " with contents" : ""}`,
          value: best,
          unit: "files/s",
          baseline,
          ratio: best / baseline,
          notes:
            `importTree of ${FILES} files (0-4 KiB, ${(bytes / 2 ** 20).toFixed(1)} MiB) in ${FILES / PER_DIRECTORY} directories, page cache warm; ` +
            (contents
              ? "contents stored as blobs (castore import), "
              : "contents hashed, not stored (castore import --no-contents), ") +
            `${backend === "memory" ? "memory://" : "lmdb:// in the temporary directory, a fresh store per round"}; best of ${ROUNDS} rounds (the process's read threads, started in the first, serve the later ones); ` +
            `baseline: bare readFileSync + BLAKE3 loop over the same files, same run (best of ${ROUNDS}); load average ${loadAverage()}`,
        });
      }
    }
    recordBenchResults(results);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
