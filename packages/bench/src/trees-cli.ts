/**
 * Whole trees through the `castore` command (not a test), each measure side
 * by side with its baseline in one run, on the same tree:
 *
 * - `castore import` with contents into a fresh lmdb store, against
 *   `git add -A -f` + `git write-tree` into a fresh bare repository
 *   (GIT_DIR=…, GIT_WORK_TREE=the tree), and against `b3sum --num-threads 1`
 *   of the same files (the hashing floor: one thread, no store);
 * - `castore import` again into the same store (nothing changed: no blob is
 *   sent), against the first import;
 * - `castore export` of the imported root, against `cp -a` of the tree;
 * - the floor (bare-import.ts): a bare Node program that walks, reads and
 *   hashes in two threads and puts each file into LMDB under its digest,
 *   against b3sum, and `castore import` against it: how much of the gap to
 *   b3sum is the runtime's and how much is castore's.
 *
 * Two trees: this machine's /usr/share (CASTORE_TREES_BENCH_SOURCE), and a
 * generated one of many small files (CASTORE_TREES_BENCH_FILES, default
 * 20 000 of 0–4 KiB). CASTORE_TREES_BENCH_MAX_MIB caps the first: the
 * top-level subdirectories of the source, in name order, are copied (cp -a)
 * into a temporary tree until the cap is reached, and that copy is measured.
 * Every measure is a whole process (the CLI's start-up included, as git's
 * and b3sum's), wall clock, best of CASTORE_TREES_BENCH_ROUNDS (default 1),
 * after one b3sum pass that warms the page cache, each after a `sync` (untimed)
 * so that none pays for the previous one's writes. Run it under `nice` on a
 * shared machine; the notes record the load average.
 *
 *   pnpm --filter @castore-ts/bench bench:trees
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  lstatSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CASTORE_BIN } from "./castore-bin.js";
import { recordBenchResults, type BenchResult } from "./results.js";
import { loadAverage } from "./timing.js";

const SOURCE = process.env.CASTORE_TREES_BENCH_SOURCE ?? "/usr/share";
const MAX_MIB = process.env.CASTORE_TREES_BENCH_MAX_MIB ? Number(process.env.CASTORE_TREES_BENCH_MAX_MIB) : undefined;
const SMALL_FILES = Number(process.env.CASTORE_TREES_BENCH_FILES ?? 20_000);
const ROUNDS = Number(process.env.CASTORE_TREES_BENCH_ROUNDS ?? 1);
const MiB = 1024 * 1024;
const BARE_IMPORT = fileURLToPath(new URL("./bare-import.js", import.meta.url));

/**
 * Writes the page cache's dirty pages out (`sync`), untimed, before each
 * timed process: what the one before wrote (git's objects, an lmdb store, a
 * copy) was otherwise written back to the disk while the next one ran, and
 * billed to it (castore import right after git took 6.1 s, 4.3-5.3 s alone).
 */
function flushDirtyPages(): void {
  spawnSync("sync", [], { stdio: "ignore" });
}

/** Runs a command to completion; returns its wall-clock seconds. Throws with its stderr if it fails. */
function timed(command: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): number {
  flushDirtyPages();
  const t0 = performance.now();
  const r = spawnSync(command, args, {
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 256 * MiB,
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0)
    throw new Error(
      `${command} ${args.join(" ")} exited ${r.status ?? r.signal}: ${r.stderr?.toString().slice(-2000)}`,
    );
  return seconds;
}

function best(rounds: number, run: (round: number) => number): number {
  let seconds = Infinity;
  for (let r = 0; r < rounds; r++) seconds = Math.min(seconds, run(r));
  return seconds;
}

/** Regular files under `root` and their total size (what b3sum is given). */
function listFiles(root: string): { files: string[]; bytes: number } {
  const files: string[] = [];
  let bytes = 0;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      const st = lstatSync(path);
      if (st.isDirectory()) walk(path);
      else if (st.isFile()) {
        files.push(path);
        bytes += st.size;
      }
    }
  };
  walk(root);
  return { files, bytes };
}

/** `b3sum --num-threads 1` over the files, in as few processes as the argument limit allows. */
function b3sum(files: string[]): number {
  let seconds = 0;
  for (let i = 0; i < files.length;) {
    const batch: string[] = [];
    let length = 0;
    while (i < files.length && length < 1_000_000) {
      batch.push(files[i]!);
      length += files[i]!.length + 1;
      i++;
    }
    seconds += timed("b3sum", ["--num-threads", "1", "--", ...batch]);
  }
  return seconds;
}

/** The source tree, or a copy of its first subdirectories up to MAX_MIB. */
function sourceTree(work: string): { path: string; note: string } {
  if (MAX_MIB === undefined) return { path: SOURCE, note: SOURCE };
  const copy = join(work, "source-capped");
  mkdirSync(copy);
  let bytes = 0;
  const taken: string[] = [];
  for (const name of readdirSync(SOURCE).sort()) {
    if (bytes >= MAX_MIB * MiB) break;
    execFileSync("cp", ["-a", join(SOURCE, name), join(copy, name)]);
    bytes += listFiles(join(copy, name)).bytes;
    taken.push(name);
  }
  return { path: copy, note: `${SOURCE}'s first ${taken.length} entries (copied until over ${MAX_MIB} MiB)` };
}

/** SMALL_FILES files of 0–4 KiB, 100 per directory under 20 top-level ones; every tenth executable. */
function makeSmallFiles(root: string): void {
  let seed = 1;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  for (let i = 0; i < SMALL_FILES; i++) {
    const d = Math.floor(i / 100);
    const directory = join(root, `d${d % 20}`, `s${d}`);
    if (i % 100 === 0) mkdirSync(directory, { recursive: true });
    const size = Math.floor(random() * 4096);
    const content = Buffer.alloc(size);
    for (let k = 0; k < size; k += 64) content[k] = (random() * 256) | 0;
    const path = join(directory, `f${i % 100}.txt`);
    writeFileSync(path, content);
    if (i % 10 === 0) chmodSync(path, 0o755);
  }
}

function measureTree(label: string, tree: string, describe: string, work: string): BenchResult[] {
  const { files, bytes } = listFiles(tree);
  const mib = bytes / MiB;
  b3sum(files); // warms the page cache for everyone below
  const b3 = best(ROUNDS, () => b3sum(files));

  const git = best(ROUNDS, (r) => {
    const gitDir = join(work, `${label}-git-${r}`);
    execFileSync("git", ["init", "--quiet", "--bare", gitDir]);
    const env = { GIT_DIR: gitDir, GIT_WORK_TREE: tree };
    // -f: files a .gitignore below the tree would hide are added too (castore takes everything)
    const seconds = timed("git", ["add", "-A", "-f"], { env, cwd: tree }) + timed("git", ["write-tree"], { env });
    rmSync(gitDir, { recursive: true, force: true });
    return seconds;
  });

  const floor = best(ROUNDS, (r) => {
    const store = join(work, `${label}-bare-${r}`);
    const seconds = timed(process.execPath, [BARE_IMPORT, tree, store]);
    rmSync(store, { recursive: true, force: true });
    return seconds;
  });

  let root = "";
  const storeOf = (r: number) => `lmdb://${join(work, `${label}-lmdb-${r}`)}`;
  const importOnce = (store: string) => {
    flushDirtyPages();
    const t0 = performance.now();
    const out = execFileSync(process.execPath, [CASTORE_BIN, "import", tree, "--store", store, "--no-progress"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    root = out.toString().trim();
    return (performance.now() - t0) / 1000;
  };
  const imported = best(ROUNDS, (r) => importOnce(storeOf(r)));
  const reimported = best(ROUNDS, () => importOnce(storeOf(0)));
  // One file changed (a different change each round) and the tree imported again into the same store: only
  // the directories from that file up to the root and its blob are sent (spec §3.6).
  const victim = files[Math.floor(files.length / 2)];
  const original = readFileSync(victim);
  const changedOnce = best(ROUNDS, (r) => {
    writeFileSync(victim, Buffer.concat([original, Buffer.from(`changed ${r} ${Date.now()}\n`)]));
    return importOnce(storeOf(0));
  });
  writeFileSync(victim, original);

  const exported = best(ROUNDS, (r) => {
    const dest = join(work, `${label}-export-${r}`);
    const seconds = timed(process.execPath, [
      CASTORE_BIN,
      "export",
      root,
      dest,
      "--store",
      storeOf(0),
      "--no-progress",
    ]);
    rmSync(dest, { recursive: true, force: true });
    return seconds;
  });
  const copied = best(ROUNDS, (r) => {
    const dest = join(work, `${label}-cp-${r}`);
    const seconds = timed("cp", ["-a", tree, dest]);
    rmSync(dest, { recursive: true, force: true });
    return seconds;
  });
  for (let r = 0; r < ROUNDS; r++) rmSync(join(work, `${label}-lmdb-${r}`), { recursive: true, force: true });

  const load = loadAverage();
  const common = `${describe}: ${files.length} files, ${mib.toFixed(1)} MiB; whole processes, wall clock, page cache warm, best of ${ROUNDS}; load average ${load}`;
  const rate = (seconds: number) => mib / seconds;
  const result = (name: string, value: number, baseline: number, notes: string): BenchResult => ({
    name: `trees-cli: ${label} ${name}`,
    value,
    unit: "MiB/s",
    baseline,
    ratio: value / baseline,
    notes: `${notes}; ${common}`,
  });
  return [
    result(
      "import vs git",
      rate(imported),
      rate(git),
      `castore import with contents into a fresh lmdb store (${imported.toFixed(2)} s) vs git add -A -f + git write-tree into a fresh bare repository (${git.toFixed(2)} s)`,
    ),
    result(
      "import vs b3sum",
      rate(imported),
      rate(b3),
      `castore import with contents into lmdb (${imported.toFixed(2)} s) vs b3sum --num-threads 1 of the same files (${b3.toFixed(2)} s)`,
    ),
    result(
      "bare Node floor vs b3sum",
      rate(floor),
      rate(b3),
      `the floor under castore import (bare-import.ts: walk, two threads reading and hashing whole files, each put into LMDB under its digest, one flush; no chunks, has, used records or directories) (${floor.toFixed(2)} s) vs b3sum --num-threads 1 (${b3.toFixed(2)} s)`,
    ),
    result(
      "import vs bare Node floor",
      rate(imported),
      rate(floor),
      `castore import with contents into lmdb (${imported.toFixed(2)} s) vs the bare Node floor above (${floor.toFixed(2)} s)`,
    ),
    result(
      "re-import vs import",
      rate(reimported),
      rate(imported),
      `castore import of the unchanged tree into the same store, no blob sent (${reimported.toFixed(2)} s) vs the first import (${imported.toFixed(2)} s)`,
    ),
    result(
      "re-import of one changed file vs import",
      rate(changedOnce),
      rate(imported),
      `castore import into the same store after one file changed: the walk and hashing as ever, then only the changed file's blob and the directories from it up to the root sent, as a partial upload (${changedOnce.toFixed(2)} s) vs the first import (${imported.toFixed(2)} s)`,
    ),
    result(
      "export vs cp -a",
      rate(exported),
      rate(copied),
      `castore export from lmdb (${exported.toFixed(2)} s) vs cp -a of the tree (${copied.toFixed(2)} s)`,
    ),
  ];
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "castore-trees-bench-"));
  try {
    const results: BenchResult[] = [];
    const source = sourceTree(work);
    results.push(...measureTree("usr-share", source.path, source.note, work));
    const small = join(work, "small-files");
    makeSmallFiles(small);
    results.push(...measureTree("small-files", small, `${SMALL_FILES} generated files of 0-4 KiB`, work));
    recordBenchResults(results);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
