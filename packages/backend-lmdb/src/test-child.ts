/**
 * Helpers for tests that run the store in other processes
 * (test/upload-loop.mjs, against the built dist/).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Digest } from "@castore-ts/core";
import { LmdbDirectoryService } from "./index.js";

const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..");
export const uploadLoopScript = join(packageDir, "test", "upload-loop.mjs");
export const checkStoreScript = join(packageDir, "test", "check-store.mjs");

function mtime(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/** True when some non-test source file has no dist/*.js at least as new as itself. */
function distIsStale(): boolean {
  const sources = readdirSync(join(packageDir, "src")).filter(
    (n) => n.endsWith(".ts") && !n.endsWith(".d.ts") && !n.includes(".test.") && !n.startsWith("test-"),
  );
  return sources.some(
    (n) => mtime(join(packageDir, "dist", n.replace(/\.ts$/, ".js"))) < mtime(join(packageDir, "src", n)),
  );
}

/**
 * The child runs dist/. `pnpm test` builds first (turbo); a bare
 * `vitest run` after editing src/ gets a fresh build of this package here.
 * @castore-ts/core's dist must exist (pnpm build).
 */
export function ensureBuilt(): void {
  try {
    createRequire(uploadLoopScript).resolve("@castore-ts/core");
  } catch (e) {
    throw new Error(`@castore-ts/core is not built (run pnpm build): ${(e as Error).message}`);
  }
  if (!distIsStale()) return;
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", join(packageDir, "tsconfig.build.json")], { encoding: "utf8" });
  if (r.status !== 0)
    throw new Error(
      `building @castore-ts/backend-lmdb failed (run pnpm build at the repository root):\n${r.stdout}${r.stderr}`,
    );
}

export interface UploadEvent {
  kind: "closing" | "committed";
  root: string;
  count: number;
}

export interface UploadChild {
  process: ChildProcess;
  events: UploadEvent[];
  /** Resolves with the exit code, or the signal's name, once its output has all been read ("close", not "exit"). */
  exited: Promise<number | string>;
  stderr: () => string;
}

/** Starts test/upload-loop.mjs; `onEvent` sees each line as it arrives. */
export function startUploadLoop(
  storePath: string,
  tag: string,
  uploads: number,
  directories: number,
  onEvent: (e: UploadEvent, child: UploadChild) => void = () => {},
): UploadChild {
  // --single-threaded: with V8's background threads on, Node 20 sometimes
  // deadlocks in a writer's first commit (a concurrent TurboFan job waits for
  // a GC that only the main thread can run, while the main thread waits for
  // that job in NodePlatform::DrainTasks; see nodejs/node#54918). About one
  // run in six hung under load; none in 80 runs with this flag.
  const proc = spawn(
    process.execPath,
    ["--single-threaded", uploadLoopScript, storePath, tag, String(uploads), String(directories)],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let err = "";
  let buffered = "";
  const child: UploadChild = {
    process: proc,
    events: [],
    exited: new Promise((resolve) => proc.on("close", (code, signal) => resolve(code ?? signal ?? "unknown"))),
    stderr: () => err,
  };
  proc.stderr!.setEncoding("utf8").on("data", (s: string) => (err += s));
  proc.stdout!.setEncoding("utf8").on("data", (s: string) => {
    buffered += s;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const [kind, root, count] = buffered.slice(0, nl).split(" ");
      buffered = buffered.slice(nl + 1);
      const event = { kind: kind as UploadEvent["kind"], root, count: Number(count) };
      child.events.push(event);
      onEvent(event, child);
    }
  });
  return child;
}

/** Runs test/check-store.mjs: the same check as checkWholeStore, from another process. */
export function checkStoreInChild(storePath: string): { directories: number; roots: string[] } {
  const r = spawnSync(process.execPath, [checkStoreScript, storePath], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`check-store failed (${r.status ?? r.signal}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as { directories: number; roots: string[] };
}

export interface StoreCheck {
  directories: number;
  digests: Set<string>;
  /** Stored directories no stored directory refers to: the roots of the uploads that landed. */
  unreferenced: Set<string>;
}

/**
 * Checks the store's invariant over everything it holds: every stored
 * directory reads back (core re-hashes and re-validates it) and every child
 * directory it names is stored too. Throws on the first breach.
 */
export async function checkWholeStore(service: LmdbDirectoryService): Promise<StoreCheck> {
  const digests = new Set<string>();
  const all: Digest[] = [];
  for await (const d of service.listDigests!()) {
    digests.add(d.hex);
    all.push(d);
  }
  const referenced = new Set<string>();
  for (const digest of all) {
    const directory = await service.get(digest);
    if (!directory) throw new Error(`listed directory ${digest} cannot be read`);
    for (const child of directory.directories) {
      const hex = Buffer.from(child.digest).toString("hex");
      if (!digests.has(hex))
        throw new Error(`stored directory ${digest} refers to ${hex}, which is not stored: partial closure`);
      referenced.add(hex);
    }
  }
  const unreferenced = new Set([...digests].filter((hex) => !referenced.has(hex)));
  return { directories: all.length, digests, unreferenced };
}
