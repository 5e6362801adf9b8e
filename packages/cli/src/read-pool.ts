/**
 * Reading and hashing files in worker threads, so that `castore import`
 * uses both cores: the main thread walks the tree and stores blobs (lmdb-js
 * encodes its writes there), the workers open, read and hash the files.
 *
 * Per batch of files, in a worker: each file opened (O_NOFOLLOW, O_NONBLOCK)
 * and fstat'ed, then read and closed, with plain blocking system calls (a
 * worker may block), and hashed with BLAKE3 (core's, the same choice of
 * implementation as the main thread's). A file that fits the read buffer
 * (1 MiB) is read whole; when contents are wanted, the whole files of a
 * batch are read into one buffer sized for them all (the *pack*), which
 * comes back moved (transferred), not copied, with the digests in another:
 * two buffers a batch, not one per file, so the main thread allocates,
 * tracks and frees a few hundred buffers for /usr/share instead of ~45 000.
 * (The bytes still count as new external memory where they arrive, which
 * forces scavenges: recycling the buffers did not help, see
 * docs/backends.md.) A file's bytes are a view of its batch's pack: the
 * pack lives until its last file is stored. A larger file is hashed in
 * 1 MiB reads and comes back without bytes (the importer reads it again
 * only if the store lacks it, see BlobUploader).
 *
 * Requests are sent in batches of BATCH files (a partial one only to an
 * idle worker, see flush()), one message each way per batch, to the worker
 * with the fewest files queued: one message per file cost about as much as
 * reading a small file. The process has one pool per thread count
 * (sharedReadPool), kept between imports.
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

/**
 * Where a read's answer goes: `error` set when it failed, else `read`.
 * Called from the thread's message handler (or a microtask), never
 * synchronously from readWith; it must not throw.
 */
export type ReadCallback = (error: unknown, read?: PoolRead) => void;

/** A read not sent to a thread yet. */
interface Pending {
  path: Buffer;
  keep: boolean;
  done: ReadCallback;
}

interface PoolWorker {
  worker: Worker;
  /** Its hash module is loaded: requests go only to ready workers. */
  ready: boolean;
  /** It failed or exited: no more reads go to it. */
  failed: boolean;
  /** Resolves with its exit code once it has exited (0: it ended on its own). */
  exited: Promise<number>;
  /** Settles once it is ready, or failed to start: from then on it may be terminated. */
  started: Promise<void>;
  queued: number;
  batches: Map<number, ReadCallback[]>;
}

const WORKER_SOURCE = `
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const fs = require("node:fs");
const FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW || 0) | (fs.constants.O_NONBLOCK || 0);
const WHOLE_MAX = workerData.wholeMax;
const buf = Buffer.allocUnsafeSlow(WHOLE_MAX);
function kindOf(st) {
  return st.isSocket() ? "socket" : st.isFIFO() ? "FIFO" : st.isCharacterDevice() || st.isBlockDevice() ? "device" : "special file";
}
function failure(e) {
  return { error: { message: String(e && e.message), code: e && e.code, errno: e && e.errno, syscall: e && e.syscall } };
}
// Reads into target[0, want) until the end of the file or want; whether it reached the end.
function readInto(fd, target, want, size) {
  let filled = 0;
  while (filled < want) {
    const n = fs.readSync(fd, target, filled, want - filled, null);
    const short = filled + n < want;
    filled += n;
    if (n === 0 || (short && filled >= size)) return { filled, atEnd: true };
  }
  return { filled, atEnd: false };
}
// Hashes the rest of a file whose first bytes were read (first), through buf.
function hashRest(hash, fd, first) {
  const hasher = hash.createBlake3Hasher();
  hasher.update(first);
  let size = first.length;
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    hasher.update(buf.subarray(0, n));
    size += n;
  }
  return { digest: hasher.digest(), size };
}
// One batch: every file opened and fstat'ed, then the whole ones read into one pack sized
// for them all (one buffer per batch, not per file: fewer allocations to free, one transfer).
function readBatch(hash, paths, keeps) {
  const results = new Array(paths.length);
  const open = [];
  let packSize = 0;
  for (let i = 0; i < paths.length; i++) {
    let fd;
    try {
      fd = fs.openSync(paths[i], FLAGS);
      const st = fs.fstatSync(fd);
      if (!st.isFile()) {
        results[i] = { kind: kindOf(st) };
        fs.closeSync(fd);
        continue;
      }
      // One more byte than fstat's size: a short read that reaches it is the end.
      const want = Math.min(st.size + 1, WHOLE_MAX);
      // at: where in the pack a whole file whose bytes are wanted goes (-1: read through buf, not kept).
      const at = keeps[i] === 1 && want > st.size ? packSize : -1;
      open.push({ i, fd, size: st.size, want, executable: (st.mode & 0o100) !== 0, at });
      if (at >= 0) packSize += want;
    } catch (e) {
      results[i] = failure(e);
      if (fd !== undefined) try { fs.closeSync(fd); } catch {}
    }
  }
  const pack = packSize > 0 ? Buffer.allocUnsafeSlow(packSize) : undefined;
  for (const f of open) {
    try {
      const target = f.at >= 0 ? pack.subarray(f.at, f.at + f.want) : buf;
      const { filled, atEnd } = readInto(f.fd, target, f.want, f.size);
      const first = target.subarray(0, filled);
      if (atEnd) {
        results[f.i] = { digest: hash.blake3(first), size: filled, executable: f.executable, at: f.at };
      } else {
        const rest = hashRest(hash, f.fd, first);
        results[f.i] = { digest: rest.digest, size: rest.size, executable: f.executable, at: -1 };
      }
    } catch (e) {
      results[f.i] = failure(e);
    } finally {
      try { fs.closeSync(f.fd); } catch {}
    }
  }
  // The digests in one buffer too: 32 bytes each, in the order of the paths.
  const digests = new Uint8Array(32 * paths.length);
  results.forEach((r, i) => {
    if (r.digest) {
      digests.set(r.digest, 32 * i);
      r.digest = undefined;
    }
  });
  return { results, digests, pack: pack && pack.buffer };
}
import(workerData.hashUrl).then((hash) => {
  parentPort.postMessage({ ready: true });
  parentPort.on("message", ({ quit, id, packed, ends, keeps }) => {
    // Asked to stop: with the port closed the thread has nothing left to do and ends on its own.
    if (quit) return parentPort.close();
    const all = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
    const paths = [];
    for (let i = 0, start = 0; i < ends.length; start = ends[i++]) paths.push(all.subarray(start, ends[i]));
    const { results, digests, pack } = readBatch(hash, paths, keeps);
    parentPort.postMessage({ id, results, digests, pack }, pack ? [digests.buffer, pack] : [digests.buffer]);
  });
}, (e) => { throw e; });
`;

/** What a worker answers for one file; `at`: where its bytes start in the batch's pack (-1: not in it). */
type WorkerAnswer =
  | { size: number; executable: boolean; at: number }
  | { kind: string }
  | {
      error: { message: string; code?: string; errno?: number; syscall?: string };
    };

/** A worker's answer to a batch: digests packed (32 bytes a file), and whole files' bytes packed. */
interface BatchAnswer {
  id: number;
  results: WorkerAnswer[];
  digests: Uint8Array;
  pack?: ArrayBuffer;
}

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
  private pending: Pending[] = [];
  private scheduled = false;
  private nextId = 0;
  private lastTarget = -1;
  private failure: unknown;
  /** close() was called: the threads keep the process alive until they have ended. */
  private closing = false;
  /**
   * Whether a worker is ready. A worker takes a while to start (a thread,
   * then core's hash module: about 0.1 s of CPU, much more on a loaded
   * machine); until one is, the importer reads files on the main thread, so
   * a small tree never waits for the pool.
   */
  ready = false;
  private readonly readyWaiters: { resolve(): void; reject(error: unknown): void }[] = [];

  /** `threads` workers. */
  constructor(threads: number) {
    const hashUrl = pathToFileURL(hashModulePath()).href;
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { hashUrl, wholeMax: WHOLE_MAX },
        // Not the process's flags: under --input-type=module the CommonJS source above failed to parse.
        execArgv: [],
      });
      let started!: () => void;
      let exited!: (code: number) => void;
      const entry: PoolWorker = {
        worker,
        ready: false,
        failed: false,
        started: new Promise<void>((resolve) => (started = resolve)),
        exited: new Promise<number>((resolve) => (exited = resolve)),
        queued: 0,
        batches: new Map(),
      };
      worker.on("message", (answer: BatchAnswer | { ready: true }) => {
        if ("ready" in answer) {
          entry.ready = this.ready = true;
          started();
          // Started: from now on an idle thread does not keep the process alive (see sharedReadPool).
          if (this.idle() && !this.closing) worker.unref();
          for (const waiter of this.readyWaiters.splice(0)) waiter.resolve();
          return;
        }
        const { id, results, digests, pack } = answer;
        const batch = entry.batches.get(id);
        if (!batch) return;
        entry.batches.delete(id);
        entry.queued -= batch.length;
        results.forEach((r, i) => {
          if ("error" in r) batch[i]!(errorOf(r.error));
          else if ("kind" in r) batch[i]!(undefined, r);
          else
            batch[i]!(undefined, {
              digest: digests.subarray(32 * i, 32 * i + 32),
              size: r.size,
              executable: r.executable,
              bytes: r.at >= 0 && pack ? new Uint8Array(pack, r.at, r.size) : undefined,
            });
        });
        this.scheduleFlush(); // it has room now: a partial batch may go
        this.unrefWhenIdle();
      });
      const fail = (error: unknown) => {
        started();
        // The first failure ends the pool (sharedReadPool makes another): its other threads are stopped too.
        const first = this.failure === undefined;
        this.failure ??= error;
        if (first) void this.close();
        entry.failed = true;
        for (const batch of entry.batches.values()) for (const done of batch) done(error);
        entry.batches.clear();
        entry.queued = 0;
        this.flush(); // to another worker, or rejected when none is left
        this.unrefWhenIdle();
        if (!this.ready && this.workers.every((w) => w.failed))
          for (const waiter of this.readyWaiters.splice(0)) waiter.reject(error);
      };
      worker.on("error", fail);
      worker.on("exit", (code) => {
        exited(code);
        fail(new Error(`a file reading thread of the import exited (${code})`));
      });
      this.workers.push(entry);
    }
  }

  /** Whether a thread failed or exited: the pool takes no more reads. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** Resolves once every thread has started or failed to (never rejects). */
  whenStarted(): Promise<void> {
    return Promise.all(this.workers.map((w) => w.started)).then(() => undefined);
  }

  /** Resolves once a worker is ready; rejects if every one failed first. */
  whenReady(): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (this.workers.every((w) => w.failed)) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * Reads and hashes one regular file (`path` as the system calls take it).
   * Only once `ready`. `keepBytes`: a whole file's bytes come back too
   * (contents stored), or only its digest.
   */
  read(path: Buffer, keepBytes: boolean): Promise<PoolRead> {
    return new Promise<PoolRead>((resolve, reject) =>
      this.readWith(path, keepBytes, (error, read) => (error === undefined ? resolve(read!) : reject(error))),
    );
  }

  /**
   * read(), answered through a callback: no promise per file (the importer
   * reads tens of thousands of small files, and a promise chain per file was
   * a good part of its main thread's time and garbage).
   */
  readWith(path: Buffer, keepBytes: boolean, done: ReadCallback): void {
    if (this.failure !== undefined) {
      const failure = this.failure;
      queueMicrotask(() => done(failure));
      return;
    }
    // Reads asked for: the threads keep the process alive until they are answered.
    if (this.idle()) for (const w of this.workers) w.worker.ref();
    this.pending.push({ path, keep: keepBytes, done });
    if (this.pending.length >= BATCH) this.flush();
    else this.scheduleFlush();
  }

  /** No read waits to be sent or to be answered. */
  private idle(): boolean {
    return this.pending.length === 0 && this.workers.every((w) => w.queued === 0);
  }

  /**
   * Once every read is answered, the started threads no longer keep the
   * process alive; except while close() waits for them to end: the first
   * to exit would unref the others, and with nothing else to do the
   * process then ended with close() unsettled (exit code 13 under a
   * top-level await).
   */
  private unrefWhenIdle(): void {
    if (this.closing) return;
    if (this.idle()) for (const w of this.workers) if (w.ready) w.worker.unref();
  }

  /** A flush once the current synchronous work is done: the walk asks for a directory's files in one loop. */
  private scheduleFlush(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /**
   * Sends the pending reads: full batches always; the last, partial one only
   * to a worker with nothing queued, else it waits for more reads or for a
   * worker's answer. Sending whatever was pending at every turn made batches
   * of 12 files on average (/usr/share: 3 700 messages each way, each waking
   * a thread); now ~2 000 (the threads outpace the main thread, so they are
   * often idle: waiting longer would idle them more).
   */
  private flush(): void {
    while (this.pending.length > 0) {
      // The live ready worker with the fewest files queued; on a tie, the one after the last sent to (always
      // the first starved the second whenever one batch was in flight at a time).
      let target: PoolWorker | undefined;
      for (let k = 1; k <= this.workers.length; k++) {
        const w = this.workers[(this.lastTarget + k) % this.workers.length]!;
        if (w.ready && !w.failed && (!target || w.queued < target.queued)) target = w;
      }
      if (!target) {
        if (this.failure === undefined) throw new Error("ReadPool.read() called before a worker was ready");
        const failure = this.failure;
        for (const { done } of this.pending.splice(0)) queueMicrotask(() => done(failure));
        return;
      }
      if (this.pending.length < BATCH && target.queued > 0) return;
      this.sendTo(target, this.pending.splice(0, BATCH));
    }
  }

  private sendTo(target: PoolWorker, batch: Pending[]): void {
    this.lastTarget = this.workers.indexOf(target);
    const id = this.nextId++;
    target.batches.set(
      id,
      batch.map((b) => b.done),
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
    const keeps = Uint8Array.from(batch, (b) => (b.keep ? 1 : 0));
    target.worker.postMessage({ id, packed, ends, keeps }, [packed.buffer, ends.buffer, keeps.buffer]);
  }

  /**
   * Stops the threads; reads not sent to one yet are rejected, those sent
   * are answered first. Each thread is asked to finish, and ends on its own
   * once it has answered what it was sent: terminate() interrupts a thread
   * wherever it is, and twice that took the whole process down (terminated
   * while the native BLAKE3 addon initialised: "FATAL ERROR: … napi_throw",
   * exit 134; once just after it started, a V8 assertion). So a thread
   * still starting is let finish first (up to START_GRACE_MS), and one that
   * has not ended QUIT_GRACE_MS after it was asked is terminated all the
   * same. Resolves with the threads' exit codes: 0 where one ended on its own.
   */
  async close(): Promise<number[]> {
    this.closing = true;
    this.failure ??= new Error("the import's file reading threads were stopped");
    const failure = this.failure;
    for (const { done } of this.pending.splice(0)) queueMicrotask(() => done(failure));
    return Promise.all(
      this.workers.map(async (w) => {
        await settlesWithin(w.started, START_GRACE_MS);
        w.worker.ref(); // the process waits for it to end
        if (w.ready && !w.failed) w.worker.postMessage({ quit: true });
        if (!(await settlesWithin(w.exited, QUIT_GRACE_MS))) await w.worker.terminate();
        return w.exited;
      }),
    );
  }
}

/** How long close() lets a thread finish starting before it stops it all the same. */
const START_GRACE_MS = 10_000;
/** How long close() lets a thread that was asked to finish do so before it terminates it. */
const QUIT_GRACE_MS = 10_000;

/** Waits for `promise` at most `ms` (the timer never keeps the process alive); whether it settled. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms).unref()));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const shared = new Map<number, ReadPool>();

/**
 * The process's pool of `threads` read threads, started on first use and
 * kept for the imports after it: a pool per import started its threads
 * (~0.1 s) for every import, and stopped them at its end, often while they
 * were still starting (a small tree is imported before they are ready):
 * terminated then, a thread could take the whole process down (see close()).
 * The threads of the shared pool are not terminated by an import; they
 * keep the process alive only while starting or while reads are asked of
 * them, so a process exits when its work is done, idle threads or not
 * (`castore import` stops them itself before it exits: closeSharedReadPools).
 * A pool that failed (a thread died) is replaced on the next use.
 */
export function sharedReadPool(threads: number): ReadPool {
  let pool = shared.get(threads);
  if (pool === undefined || pool.failed) {
    pool = new ReadPool(threads);
    shared.set(threads, pool);
  }
  return pool;
}

/** Stops the shared pools' threads (once started) and forgets them: the next import starts new ones. */
export async function closeSharedReadPools(): Promise<void> {
  const pools = [...shared.values()];
  shared.clear();
  await Promise.all(pools.map((pool) => pool.close()));
}
