/**
 * Reading and hashing files in worker threads, so that `castore import`
 * uses both cores: the main thread walks the tree and stores blobs (lmdb-js
 * encodes its writes there), the workers open, read and hash the files.
 *
 * Per file, in a worker: open (O_NOFOLLOW, O_NONBLOCK), fstat, read, close,
 * with plain blocking system calls (a worker may block), and BLAKE3 (core's,
 * the same choice of implementation as the main thread's). A file that fits
 * the read buffer (1 MiB) is read whole; when its contents are wanted its
 * bytes come back with the digest, moved (transferred), not copied. A larger
 * file is hashed in 1 MiB reads and comes back without bytes (the importer
 * reads it again only if the store lacks it, see BlobUploader).
 *
 * Requests are sent in batches (the files of a directory, at most BATCH), one
 * message each way per batch, to the worker with the fewest files queued:
 * one message per file cost about as much as reading a small file.
 *
 * The worker's code is a string evaluated as CommonJS: a separate module file
 * would not exist where the importer runs from its TypeScript sources
 * (tests). It loads core's hash module, resolved from here by package name.
 */
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";

/** What a worker answers for one file. */
export type PoolRead = { digest: Uint8Array; size: number; executable: boolean; bytes?: Uint8Array } | { kind: string };

/** Files sent to a worker in one message at most. */
const BATCH = 64;
/** A file up to this size is read whole (the importer's read buffer). */
export const WHOLE_MAX = 1 << 20;

interface Waiting {
  resolve(read: PoolRead): void;
  reject(error: unknown): void;
}

interface PoolWorker {
  worker: Worker;
  /** Its hash module is loaded: requests go only to ready workers. */
  ready: boolean;
  queued: number;
  batches: Map<number, Waiting[]>;
}

const WORKER_SOURCE = `
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW || 0) | (fs.constants.O_NONBLOCK || 0);
const buf = Buffer.allocUnsafeSlow(workerData.wholeMax);
function kindOf(st) {
  return st.isSocket() ? "socket" : st.isFIFO() ? "FIFO" : st.isCharacterDevice() || st.isBlockDevice() ? "device" : "special file";
}
function readOne(hash, path, transfer) {
  let fd;
  try {
    fd = fs.openSync(path, FLAGS);
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return { kind: kindOf(st) };
    const executable = (st.mode & 0o100) !== 0;
    // One more byte than fstat's size: a short read that reaches it is the end.
    const want = Math.min(st.size + 1, buf.length);
    let filled = 0;
    let atEnd = false;
    while (filled < want) {
      const n = fs.readSync(fd, buf, filled, want - filled, null);
      const short = filled + n < want;
      filled += n;
      if (n === 0 || (short && filled >= st.size)) { atEnd = true; break; }
    }
    if (atEnd) {
      if (!workerData.keepBytes) return { digest: Uint8Array.from(hash.blake3(buf.subarray(0, filled))), size: filled, executable };
      const bytes = new Uint8Array(filled);
      bytes.set(buf.subarray(0, filled));
      transfer.push(bytes.buffer);
      return { digest: Uint8Array.from(hash.blake3(bytes)), size: filled, executable, bytes };
    }
    const hasher = hash.createBlake3Hasher();
    hasher.update(buf.subarray(0, filled));
    let size = filled;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hasher.update(buf.subarray(0, n));
      size += n;
    }
    return { digest: Uint8Array.from(hasher.digest()), size, executable };
  } catch (e) {
    return { error: { message: String(e && e.message), code: e && e.code, errno: e && e.errno, syscall: e && e.syscall } };
  } finally {
    if (fd !== undefined) try { fs.closeSync(fd); } catch {}
  }
}
import(workerData.hashUrl).then((hash) => {
  parentPort.postMessage({ ready: true });
  parentPort.on("message", ({ id, packed, ends }) => {
    const transfer = [];
    const all = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
    const results = [];
    for (let i = 0, start = 0; i < ends.length; start = ends[i++]) results.push(readOne(hash, all.subarray(start, ends[i]), transfer));
    parentPort.postMessage({ id, results }, transfer);
  });
}, (e) => { throw e; });
`;

type WorkerAnswer =
  | { digest: Uint8Array; size: number; executable: boolean; bytes?: Uint8Array }
  | { kind: string }
  | {
      error: { message: string; code?: string; errno?: number; syscall?: string };
    };

/** The error a worker's system call failed with, as the main thread's fs would have thrown it. */
function errorOf(e: { message: string; code?: string; errno?: number; syscall?: string }): Error {
  return Object.assign(new Error(e.message), { code: e.code, errno: e.errno, syscall: e.syscall });
}

/**
 * Core's hash module as Node loads it. Under vitest, which resolves
 * workspace packages to their TypeScript sources (the "source" condition),
 * this resolves to src/hash.ts, which a worker cannot load: then the built
 * module beside it (dist/hash.js; tests run after a build).
 */
function hashModulePath(): string {
  const resolved = createRequire(import.meta.url).resolve("@castore-ts/core/hash");
  return resolved.endsWith(".ts") ? resolved.replace(/\/src\/hash\.ts$/, "/dist/hash.js") : resolved;
}

export class ReadPool {
  private readonly workers: PoolWorker[] = [];
  private pending: { path: Buffer; waiting: Waiting }[] = [];
  private scheduled = false;
  private nextId = 0;
  private lastTarget = -1;
  private failure: unknown;
  /**
   * Whether a worker is ready. A worker takes a while to start (a thread,
   * then core's hash module: about 0.1 s of CPU, much more on a loaded
   * machine); until one is, the importer reads files on the main thread, so
   * a small tree never waits for the pool.
   */
  ready = false;
  private readonly readyWaiters: (() => void)[] = [];

  /** `threads` workers; `keepBytes`: whether whole files' bytes come back (contents stored) or only their digests. */
  constructor(threads: number, keepBytes: boolean) {
    const hashUrl = pathToFileURL(hashModulePath()).href;
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { hashUrl, keepBytes, wholeMax: WHOLE_MAX },
      });
      const entry: PoolWorker = { worker, ready: false, queued: 0, batches: new Map() };
      worker.on("message", ({ id, results, ready }: { id: number; results: WorkerAnswer[]; ready?: true }) => {
        if (ready) {
          entry.ready = this.ready = true;
          for (const wake of this.readyWaiters.splice(0)) wake();
          return;
        }
        const batch = entry.batches.get(id);
        if (!batch) return;
        entry.batches.delete(id);
        entry.queued -= batch.length;
        results.forEach((r, i) => {
          if ("error" in r) batch[i]!.reject(errorOf(r.error));
          else batch[i]!.resolve(r);
        });
      });
      const fail = (error: unknown) => {
        this.failure ??= error;
        for (const batch of entry.batches.values()) for (const w of batch) w.reject(error);
        entry.batches.clear();
      };
      worker.on("error", fail);
      worker.on("exit", (code) => fail(new Error(`a file reading thread of the import exited (${code})`)));
      this.workers.push(entry);
    }
  }

  /** Resolves once a worker is ready. */
  whenReady(): Promise<void> {
    return this.ready ? Promise.resolve() : new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Reads and hashes one regular file (`path` as the system calls take it). Only once `ready`. */
  read(path: Buffer): Promise<PoolRead> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.push({ path, waiting: { resolve, reject } });
      if (this.pending.length >= BATCH) this.send();
      else if (!this.scheduled) {
        // The walk asks for a directory's files in one synchronous loop: they go together.
        this.scheduled = true;
        queueMicrotask(() => {
          this.scheduled = false;
          this.send();
        });
      }
    });
  }

  private send(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    // The ready worker with the fewest files queued; on a tie, the one after the last sent to (always the
    // first starved the second whenever one batch was in flight at a time).
    let target: PoolWorker | undefined;
    for (let k = 1; k <= this.workers.length; k++) {
      const w = this.workers[(this.lastTarget + k) % this.workers.length]!;
      if (w.ready && (!target || w.queued < target.queued)) target = w;
    }
    if (!target) throw new Error("ReadPool.read() called before a worker was ready");
    this.lastTarget = this.workers.indexOf(target);
    const id = this.nextId++;
    target.batches.set(
      id,
      batch.map((b) => b.waiting),
    );
    target.queued += batch.length;
    // All the paths in one buffer of their own, moved to the worker: a small
    // Buffer is a view of Node's shared 8 KiB pool, and posting a view
    // copies its whole ArrayBuffer (allocUnsafeSlow: never from the pool,
    // which must not be moved).
    const ends = new Uint32Array(batch.length);
    let end = 0;
    batch.forEach((b, i) => (ends[i] = end += b.path.length));
    const packed = Buffer.allocUnsafeSlow(end);
    batch.forEach((b, i) => packed.set(b.path, ends[i]! - b.path.length));
    target.worker.postMessage({ id, packed, ends }, [packed.buffer, ends.buffer]);
  }

  /** Stops the workers; reads still queued are rejected. */
  async close(): Promise<void> {
    this.failure ??= new Error("the import's file reading threads were stopped");
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
