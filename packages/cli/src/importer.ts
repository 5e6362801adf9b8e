/**
 * Imports a real directory tree in two phases:
 *
 * 1. Walk and hash. The tree is listed depth first, ahead of the hashing by
 *    at most `listAheadFiles` files; file contents are hashed with BLAKE3 (a
 *    bounded number of files at a time, across directories); each directory
 *    is built once all its entries are known (its files hashed, its
 *    subdirectories built), encoded, and appended to a spool, so children
 *    always precede parents (leaves to root). With contents, each hashed
 *    file goes to the BlobUploader, which writes the blobs the store lacks
 *    (see blob-uploader.ts: batched `has`, small files read once and sent
 *    many to a call, large ones read again only when missing). Blobs are
 *    written without waiting for the disk (`syncLater`); when the walk
 *    ends, one `sync()` of the blob service makes them all durable. No
 *    directory upload is open during this phase, and all blobs are stored,
 *    and durable, before it ends: a crash at any moment leaves no directory
 *    naming a blob that is not on disk.
 * 2. Upload. Only then is the store's upload opened, and the spooled
 *    directories are streamed into it back to back and the upload closed.
 *
 * Why: a remote store (`castore serve`) ends an upload that sends nothing
 * for its idle timeout (60 s by default). Hashing big files between two
 * directories used to keep an upload open and silent for that long.
 *
 * Memory: the spool keeps the *encoded directories* (not file contents) in
 * memory up to `spoolMemoryBytes` (64 MiB by default; /usr/share of a
 * typical machine is about 3 MiB of directories), and appends the rest to a
 * temporary file (length-prefixed records, removed when the import ends),
 * which is read back in order for the upload. Besides the spool, the walk
 * holds the entries of the directories not built yet: at most
 * `listAheadFiles` files waiting or being hashed (plus one directory's),
 * their directories, and those directories' ancestors.
 *
 * Per file: one open (O_NOFOLLOW, O_NONBLOCK), fstat (size and executable
 * bit), read(s) into a reused buffer, close; readdir's entry types avoid an
 * lstat per entry. Small files are read in one go and hashed in one call.
 * By default two worker threads do that (read-pool.ts: the process's pool,
 * kept between imports), so the main thread only walks and stores, once
 * they have started (until then, and with `readThreads: 0`, the main thread
 * does, with sync system calls while that is faster: see IoMode).
 * Directories are listed and symlinks read with sync calls on the main
 * thread (readdirSync, readlinkSync): through libuv's thread pool each was a
 * round trip that the walk waited for (/usr/share: 7 000 of them, an import
 * into lmdb 4.3-5.1 s against 3.5-3.8 s sync).
 *
 * Names are bytes: paths are handled as Buffers end to end, so a name that
 * is not UTF-8 is read and stored exactly.
 *
 * Depth is not limited by PATH_MAX (4 096 bytes on Linux): see Anchors.
 * Error messages name the path as given below the root, abbreviated to its
 * start and end when long.
 */
import {
  close as closeCb,
  closeSync,
  constants as fsConstants,
  createReadStream,
  existsSync,
  fstat as fstatCb,
  fstatSync,
  mkdtempSync,
  open as openCb,
  openSync,
  read as readCb,
  readSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeSync,
  type Dirent,
  type Stats,
} from "node:fs";
import { lstat } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { promisify } from "node:util";
import { join as joinPath } from "node:path";
import pLimit from "p-limit";
import Queue from "yocto-queue";
import {
  type BlobService,
  type BlobWriter,
  Digest,
  type DirectoryService,
  ValidationError,
  blake3,
  compareBytes,
  createBlake3Hasher,
  decodeDirectory,
  directorySize,
  encodeDirectory,
  forwardAbort,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
  missingTopDown,
  supportsPartialUploads,
  type DirectoryNode,
  type FileNode,
  type SymlinkNode,
} from "@castore-ts/core";
import { BlobUploader, type BlobUploadCounts, type Deferred } from "./blob-uploader.js";
import { abbreviatePath } from "./names.js";
import { type ReadPool, sharedReadPool } from "./read-pool.js";

export interface ImportProgress {
  /** Files hashed (and, with contents, stored or found stored). */
  files: number;
  /** Files the walk has found so far: hashed, or waiting to be (at most listAheadFiles more than `files`, plus one directory's). */
  listed: number;
  bytes: number;
  directories: number;
  /** Directories sent to the store (the upload phase, after the walk). */
  uploaded: number;
  /**
   * Directories the store held already, so not sent: where the store takes
   * partial uploads, those found stored top down (only the topmost of a
   * stored subtree is counted: nothing below it is asked about).
   */
  directoriesPresent?: number;
  /** With contents: blobs (and their bytes) written to the store, and files whose blob it had already. */
  blobs?: BlobUploadCounts;
}

export interface ImportOptions {
  /** Files read and hashed at once through asynchronous calls (default 8): larger files, and small ones when reading them one at a time is slower (see IoMode). */
  concurrency?: number;
  /**
   * Files the walk lists ahead of the hashing at most (default 4 096): it
   * waits there until half of them are done, so a tree of millions of files
   * is never queued whole.
   */
  listAheadFiles?: number;
  /** Encoded directories kept in memory before the spool spills to a temporary file (default 64 MiB; 0: always spill). */
  spoolMemoryBytes?: number;
  /** Where the spool's temporary file goes (default: the OS temporary directory). */
  spoolDir?: string;
  /** Small files read with sync system calls (true), through the thread pool (false), or whichever measures faster (undefined, the default; see IoMode). Only without read threads. */
  syncIo?: boolean;
  /**
   * Worker threads that open, read and hash the files (see read-pool.ts);
   * default DEFAULT_READ_THREADS. 0: the main thread does (with IoMode and
   * `concurrency`).
   */
  readThreads?: number;
  /**
   * Files the walk lists before the read threads are asked for (default
   * POOL_AFTER_FILES): a tree smaller than that is read on the main thread
   * and never waits for threads to start.
   */
  readThreadsAfterFiles?: number;
  /** Where file contents are stored as blobs; without it, files are only hashed (`--no-contents`). */
  blobs?: BlobService;
  /** Blobs written at once (default DEFAULT_UPLOAD_CONCURRENCY). */
  uploadConcurrency?: number;
  onProgress?(p: ImportProgress): void;
  signal?: AbortSignal;
}

export const DEFAULT_SPOOL_MEMORY_BYTES = 64 * 1024 * 1024;
/**
 * Read threads by default: two (this machine's cores, and where the main
 * thread's own work, walking and storing, leaves a core's worth to read and
 * hash with), fewer on a machine with one core.
 */
export const DEFAULT_READ_THREADS = Math.min(2, availableParallelism());
/**
 * Files being read by the read threads at once: two batches of the pool's
 * (64 files), so both threads are busy at once (at 64, one batch was in
 * flight at a time: 20 000 small files imported in 2.1 s instead of 2.0 s,
 * /usr/share in 8.5 s instead of 7.7 s); their bytes (at most WHOLE_MAX
 * each) are the bound on memory besides the BlobUploader's. A file's bytes
 * are a view of its batch's pack (read-pool.ts), which stays until the last
 * of them is stored: the files of a batch reach the BlobUploader together
 * and are written in the same or the next of its batches, so this holds in
 * practice, not to the byte (512 in flight measured no faster).
 */
const POOL_IN_FLIGHT = 128;
/**
 * Files listed before the read threads are asked for: fewer are read on the
 * main thread in a few milliseconds, where starting two threads costs about
 * 0.1 s of CPU, and the import would then wait for them to finish starting
 * (see importTree's end).
 */
const POOL_AFTER_FILES = 64;
/** Levels of the walk's synchronous recursion at most between two awaits (see listDirectory). */
const YIELD_DEPTH = 64;
/**
 * Files the walk lists ahead of the hashing by default (ImportOptions.listAheadFiles):
 * enough to keep the read threads busy across many small directories.
 */
export const DEFAULT_LIST_AHEAD_FILES = 4096;

/** A directory listed: `done` settles once it is finished (wrapped: an async function would wait for a promise it returns). */
interface Listed {
  done: Promise<DirectoryDone>;
}

/** A file read and hashed: what its FileNode needs. */
interface Hashed {
  digest: Uint8Array;
  size: number;
  executable: boolean;
}

/** Where a file's answer goes: `error` set when it failed, else `hashed`. Must not throw. */
type FileCallback = (error: unknown, hashed?: Hashed) => void;

/**
 * The files of one directory being hashed, counted rather than a promise
 * each: their FileNodes, in listing order, as their answers come.
 */
class DirectoryFiles {
  private readonly answered: FileNode[] = [];
  private waiting = 0;
  private listingEnded = false;
  private failure: { reason: unknown } | undefined;
  private settle!: () => void;
  /**
   * Resolves once the listing has ended and every file expected has
   * answered, failed or not (never rejects): a directory's anchor is closed
   * only then (see listDirectory).
   */
  readonly allAnswered = new Promise<void>((resolve) => (this.settle = resolve));

  /** One more file: its index. */
  expect(): number {
    this.waiting++;
    return this.answered.push(undefined as unknown as FileNode) - 1;
  }

  answer(index: number, node: FileNode): void {
    this.answered[index] = node;
    this.oneAnswered();
  }

  fail(reason: unknown): void {
    this.failure ??= { reason };
    this.oneAnswered();
  }

  /** No more files will be expected. */
  endOfListing(): void {
    this.listingEnded = true;
    if (this.waiting === 0) this.settle();
  }

  /** Every file's node, once all answered; rejects with the first failure. */
  async nodes(): Promise<FileNode[]> {
    await this.allAnswered;
    if (this.failure) throw this.failure.reason;
    return this.answered;
  }

  private oneAnswered(): void {
    if (--this.waiting === 0 && this.listingEnded) this.settle();
  }
}

/** A directory the walk finished: what its parent's DirectoryNode needs. */
interface DirectoryDone {
  digest: Digest;
  size: bigint;
}
/**
 * Blob writes at once (a batch of small files sent by one putMany counts
 * as one). Many: a blob's write is mostly waiting (a remote store answers
 * after a round trip; lmdb commits the writes in flight together), and the
 * bytes held are bounded by the BlobUploader anyway.
 */
export const DEFAULT_UPLOAD_CONCURRENCY = 32;
/**
 * Into a store on this machine (lmdb, memory): 256, where 20 000 small files
 * imported about 40% faster than at 32 (1 024 was no faster). Not the default
 * for remote stores: a server caps the streams of a connection (castore
 * serve: 100), and a PostgreSQL pool has 10 connections.
 */
export const LOCAL_UPLOAD_CONCURRENCY = 256;

/** A file type castore cannot store (socket, device, FIFO): refused with its path. */
export class UnsupportedFileTypeError extends ValidationError {}

const SLASH = Buffer.from("/");
/** Read buffer per hashing job; a file that fits is read in one call. */
const CHUNK = 1 << 20;
/** Up to this size a file is hashed in one call (wasm one-shot: ~3x cheaper per call than the incremental native hasher); above, incrementally (native SIMD). */
const ONE_SHOT_MAX = 64 * 1024;
const YIELD_MS = 20;
const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NOFOLLOW ?? 0) | (fsConstants.O_NONBLOCK ?? 0);

function join(parent: Buffer, name: Buffer): Buffer {
  return Buffer.concat([parent, SLASH, name]);
}

/**
 * Where an entry is, for messages: its parent and name, joined into a path
 * only when a message needs it (a deep tree's paths would otherwise cost
 * memory quadratic in its depth).
 */
interface Place {
  readonly parent: Place | undefined;
  readonly name: Buffer;
}

function pathOf(place: Place): Buffer {
  const names: Buffer[] = [];
  for (let p: Place | undefined = place; p; p = p.parent) names.push(p.name, SLASH);
  names.pop();
  return Buffer.concat(names.reverse());
}

/**
 * Anchors: how the walk goes below PATH_MAX. Every system call takes a path,
 * and the kernel refuses one over PATH_MAX (ENAMETOOLONG). Node has no
 * openat() and a library may not chdir(), so once a directory's path grows
 * over ANCHOR_PATH_BYTES the walk opens that directory and goes on from
 * `/proc/self/fd/N`: Linux resolves that link to the open directory itself,
 * so the paths below it start short again (and one more anchor is taken each
 * time they grow that long). The descriptor is closed when that directory is
 * done, so the walk holds one per ANCHOR_PATH_BYTES of depth.
 *
 * Why not always: a tree of ordinary depth (all of the import bench) keeps
 * plain paths and pays nothing, not an open and close per directory nor a
 * /proc lookup per file. Why not only after an ENAMETOOLONG: a path that
 * stays under the threshold never fails for length (threshold plus a name,
 * at most 255 bytes, is well under PATH_MAX), so there is no retry path to
 * get wrong. Elsewhere than Linux (no /proc) paths are used throughout and a
 * tree that deep fails with ENAMETOOLONG, named in the message.
 */
const ANCHOR_PATH_BYTES = 2048;
/** How a path through an anchor starts. */
const ANCHORED_PREFIX = Buffer.from("/proc/self/fd/");
const DIRECTORY_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_DIRECTORY ?? 0) | (fsConstants.O_NOFOLLOW ?? 0);
let procFdAvailable: boolean | undefined;
function canAnchor(): boolean {
  procFdAvailable ??= process.platform === "linux" && existsSync("/proc/self/fd");
  return procFdAvailable;
}

/**
 * A failed system call's error, with the path as the user knows it
 * (abbreviated) instead of the path the call used (maybe /proc/self/fd/N/…);
 * code, errno and syscall kept for callers that match them. Other errors
 * (castore's, an abort's reason) pass through.
 */
function fileSystemError(e: unknown, place: Place): unknown {
  const err = e as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof err.code !== "string" || typeof err.syscall !== "string") return e;
  // Node's message is "CODE: description, syscall 'path'": keep what failed, drop the path.
  const cut = err.message.indexOf(`, ${err.syscall}`);
  const what = cut > 0 ? err.message.slice(0, cut) : err.code;
  return Object.assign(
    new Error(`cannot import ${abbreviatePath(pathOf(place))}: ${what} (${err.syscall})`, { cause: e }),
    {
      code: err.code,
      errno: err.errno,
      syscall: err.syscall,
    },
  );
}

// The callback fs calls, promisified: no FileHandle object (fs/promises) per file.
const openAsync = promisify(openCb);
const fstatAsync = promisify(fstatCb);
const readAsync = promisify(readCb);
const closeAsync = promisify(closeCb);
const open = (path: Buffer, flags = OPEN_FLAGS) => openAsync(path, flags);
const fstat = (fd: number): Promise<Stats> => fstatAsync(fd);
const read = async (fd: number, buf: Buffer, off: number, len: number) =>
  (await readAsync(fd, buf, off, len, null)).bytesRead;
/** A read-only descriptor: closing it cannot lose data, so a failure to close is not the import's failure. */
const close = (fd: number) => closeAsync(fd).catch(() => {});

function kindOf(st: {
  isSocket(): boolean;
  isFIFO(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  return st.isSocket()
    ? "socket"
    : st.isFIFO()
      ? "FIFO"
      : st.isCharacterDevice() || st.isBlockDevice()
        ? "device"
        : "special file";
}

function unsupported(place: Place, kind: string): UnsupportedFileTypeError {
  return new UnsupportedFileTypeError(
    `cannot import ${abbreviatePath(pathOf(place))}: it is a ${kind}; castore stores only directories, regular files and symlinks`,
  );
}

/**
 * How files are opened and read. Sync: open, fstat, read and close of a file
 * smaller than the read buffer are plain system calls on the main thread,
 * one file at a time: about 3x the files/s of four thread-pool round trips
 * per file when the files are in the page cache. Async: every call through
 * the thread pool, `--jobs` files at a time: better when reads wait for the
 * disk (cold cache, network file system), where the sync way reads one file
 * at a time. Files larger than the buffer are always read asynchronously.
 *
 * Auto (the default) measures: the walk goes in windows of WINDOW files,
 * each in one mode, and keeps each mode's files/s of its latest window; it
 * uses the faster, and tries the other one window in PROBE_EVERY so a change
 * (the cache warms up, a cold subtree) is noticed.
 */
class IoMode {
  private readonly rates = { sync: 0, async: 0 };
  private windowStart = performance.now();
  private windowFiles = 0;
  private windows = 0;
  sync: boolean;

  constructor(private readonly fixed: boolean | undefined) {
    this.sync = fixed ?? true;
  }

  /** A file is done (in the mode it started in). */
  done(): void {
    if (this.fixed !== undefined || ++this.windowFiles < WINDOW) return;
    const now = performance.now();
    this.rates[this.sync ? "sync" : "async"] = this.windowFiles / Math.max(now - this.windowStart, 0.001);
    this.windowStart = now;
    this.windowFiles = 0;
    this.windows++;
    const other = this.sync ? "async" : "sync";
    const current = this.sync ? "sync" : "async";
    const next =
      this.rates[other] === 0 || this.windows % PROBE_EVERY === 0
        ? other
        : this.rates[other] > this.rates[current]
          ? other
          : current;
    this.sync = next === "sync";
  }
}
const WINDOW = 256;
const PROBE_EVERY = 16;

/**
 * Hashes one regular file through `buf` (reused across files). Reads until
 * end of file; a file whose size fits the buffer is normally read with one
 * read call (asking for one byte more than fstat's size tells where it ends).
 */
async function hashFile(
  path: Buffer,
  place: Place,
  buf: Buffer,
  signal: AbortSignal,
  io: IoMode,
): Promise<{ digest: Uint8Array; size: number; executable: boolean; whole: boolean }> {
  const sync = io.sync;
  const fd = sync ? openSync(path, OPEN_FLAGS) : await open(path);
  let syncRead = false;
  try {
    const st = sync ? fstatSync(fd) : await fstat(fd);
    if (!st.isFile()) throw unsupported(place, kindOf(st)); // replaced since readdir
    const executable = (st.mode & 0o100) !== 0;
    syncRead = sync && st.size < buf.length;
    // First read: the whole file when it fits. A short read that reaches fstat's
    // size is the end of the file (regular files read short only there), so a
    // small file takes one read call, not a second one returning 0.
    let filled = 0;
    const want = Math.min(st.size + 1, buf.length);
    let atEnd = false;
    while (filled < want) {
      const n = syncRead ? readSync(fd, buf, filled, want - filled, null) : await read(fd, buf, filled, want - filled);
      const short = filled + n < want;
      filled += n;
      if (n === 0 || (short && filled >= st.size)) {
        atEnd = true;
        break;
      }
    }
    // whole: the file's bytes are all in buf[0, size) (read in one go).
    if (atEnd && filled <= ONE_SHOT_MAX)
      return { digest: blake3(buf.subarray(0, filled)), size: filled, executable, whole: true };
    const hasher = createBlake3Hasher();
    hasher.update(buf.subarray(0, filled));
    let size = filled;
    if (!atEnd) {
      for (;;) {
        signal.throwIfAborted();
        const n = await read(fd, buf, 0, buf.length);
        if (n === 0) break;
        hasher.update(buf.subarray(0, n));
        size += n;
      }
    }
    return { digest: hasher.digest(), size, executable, whole: atEnd };
  } finally {
    if (sync) closeSync(fd);
    else await close(fd);
    io.done();
  }
}

/**
 * Streams one regular file into a blob writer through `buf` (reused: the
 * writer copies what it keeps before write() resolves). The second read of a
 * large file the store lacks (see BlobUploader).
 */
async function streamFile(
  path: Buffer,
  place: Place,
  buf: Buffer,
  signal: AbortSignal,
  writer: BlobWriter,
): Promise<void> {
  const fd = await open(path);
  try {
    const st = await fstat(fd);
    if (!st.isFile()) throw unsupported(place, kindOf(st)); // replaced since it was hashed
    for (;;) {
      signal.throwIfAborted();
      const n = await read(fd, buf, 0, buf.length);
      if (n === 0) break;
      await writer.write(buf.subarray(0, n));
    }
  } finally {
    await close(fd);
  }
}

/**
 * Encoded directories, leaves to root, in memory up to a limit and then in a
 * temporary file as length-prefixed records (u32 LE length, bytes).
 */
class DirectorySpool {
  private readonly memory: Uint8Array[] = [];
  private memoryBytes = 0;
  private file: { dir: string; path: string; fd: number } | undefined;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  count = 0;

  constructor(
    private readonly limitBytes: number,
    private readonly dir: string,
  ) {}

  add(bytes: Uint8Array): void {
    this.count++;
    if (!this.file && this.memoryBytes + bytes.length <= this.limitBytes) {
      this.memory.push(bytes);
      this.memoryBytes += bytes.length;
      return;
    }
    if (!this.file) {
      const dir = mkdtempSync(joinPath(this.dir, "castore-import-"));
      const path = joinPath(dir, "directories");
      this.file = { dir, path, fd: openSync(path, "wx", 0o600) };
    }
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32LE(bytes.length);
    this.pending.push(header, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    this.pendingBytes += 4 + bytes.length;
    if (this.pendingBytes >= CHUNK) this.flush();
  }

  private flush(): void {
    if (!this.file || this.pendingBytes === 0) return;
    const data = Buffer.concat(this.pending, this.pendingBytes);
    for (let off = 0; off < data.length;) off += writeSync(this.file.fd, data, off);
    this.pending = [];
    this.pendingBytes = 0;
  }

  /** Every directory in the order added. */
  async *entries(): AsyncGenerator<Uint8Array> {
    yield* this.memory;
    if (!this.file) return;
    this.flush();
    let chunks: Buffer[] = [];
    let have = 0;
    let need = 4;
    for await (const chunk of createReadStream(this.file.path, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      have += chunk.length;
      if (have < need) continue;
      const all = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, have);
      let off = 0;
      for (;;) {
        if (all.length - off < 4) {
          need = 4;
          break;
        }
        const len = all.readUInt32LE(off);
        if (all.length - off - 4 < len) {
          need = 4 + len;
          break;
        }
        yield all.subarray(off + 4, off + 4 + len);
        off += 4 + len;
      }
      const rest = all.subarray(off);
      chunks = rest.length ? [rest] : [];
      have = rest.length;
    }
    if (have !== 0) throw new Error(`import spool ${this.file.path}: ${have} trailing bytes`);
  }

  dispose(): void {
    if (!this.file) return;
    try {
      closeSync(this.file.fd);
    } catch {
      // already closed
    }
    rmSync(this.file.dir, { recursive: true, force: true });
    this.file = undefined;
  }
}

/**
 * What phase 2 needs to ask the store top down without reading the spool
 * twice: each spooled directory's digest, in spool order, and its child
 * directories' digests (32 bytes each, a few per directory).
 */
class SpooledTree {
  private readonly digests: string[] = [];
  private readonly children = new Map<string, Uint8Array[]>();

  add(digest: Digest, directories: readonly DirectoryNode[]): void {
    this.digests.push(digest.hex);
    if (directories.length > 0)
      this.children.set(
        digest.hex,
        directories.map((d) => d.digest),
      );
  }

  /** The hex digest of the spool's `index`-th directory. */
  digestAt(index: number): string {
    return this.digests[index];
  }

  readonly childrenOf = (digest: Digest): Uint8Array[] => this.children.get(digest.hex) ?? [];
}

export async function importTree(
  service: DirectoryService,
  root: string,
  opts: ImportOptions = {},
): Promise<{ digest: Digest; progress: ImportProgress }> {
  const concurrency = opts.concurrency ?? 8;
  // Stops queued hashing jobs once the import has failed or is interrupted (the caller's signal: see below).
  const failed = new AbortController();
  const signal = failed.signal;
  const progress: ImportProgress = { files: 0, listed: 0, bytes: 0, directories: 0, uploaded: 0 };
  const listAhead = Math.max(1, opts.listAheadFiles ?? DEFAULT_LIST_AHEAD_FILES);
  const rootPath = Buffer.from(root);
  const rootPlace: Place = { parent: undefined, name: rootPath };
  const rootStat = await lstat(rootPath).catch((e) => {
    throw fileSystemError(e, rootPlace);
  });
  if (!rootStat.isDirectory())
    throw new ValidationError(`${abbreviatePath(rootPath)} is not a directory; castore import takes a directory`);

  const buffers: Buffer[] = [];
  const io = new IoMode(opts.syncIo);
  const readThreads = opts.readThreads ?? DEFAULT_READ_THREADS;
  // The process's threads (see sharedReadPool), asked for once the walk has listed POOL_AFTER_FILES files.
  let pool: ReadPool | undefined;
  const poolAfterFiles = opts.readThreadsAfterFiles ?? POOL_AFTER_FILES;
  const limit = pLimit(readThreads > 0 ? Math.max(concurrency, POOL_IN_FLIGHT) : concurrency);
  // A store that takes partial uploads is asked top down which directories it lacks (phase 2); then the
  // blobs of files in the directories it holds need not be asked about either (BlobUploader.deferring).
  const partial = await supportsPartialUploads(service, { signal: opts.signal });
  const uploader = opts.blobs
    ? new BlobUploader(opts.blobs, {
        concurrency: opts.uploadConcurrency ?? DEFAULT_UPLOAD_CONCURRENCY,
        signal,
        onProgress: () => opts.onProgress?.(progress),
        deferWhenAllPresent: partial,
      })
    : undefined;
  /** Files not asked about (deferred), by their Place, until their directory's digest is known. */
  const deferredAt = new Map<Place, Deferred>();
  /** Deferred files by the hex digest of their directory. */
  const deferredIn = new Map<string, Deferred[]>();
  if (uploader) progress.blobs = uploader.counts;
  let lastYield = performance.now();

  /**
   * Into the store if it lacks it: small files from the bytes read, large
   * ones read again (only if missing). A promise only when there is
   * something to wait for (a large file; no room for more bytes); may throw.
   */
  const upload = (
    up: BlobUploader,
    path: Buffer,
    place: Place,
    digest: Digest,
    size: number,
    bytes: Uint8Array | undefined,
  ): Promise<void> | undefined => {
    const shown = () => abbreviatePath(pathOf(place));
    // Not through an anchor: that descriptor is closed by the time a deferred file is read again.
    if (up.deferring && !path.subarray(0, ANCHORED_PREFIX.length).equals(ANCHORED_PREFIX)) {
      deferredAt.set(place, {
        digest,
        size,
        shown,
        write: async (writer) => {
          const buf = buffers.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
          try {
            await streamFile(path, place, buf, signal, writer);
          } finally {
            buffers.push(buf);
          }
        },
      });
      return;
    }
    if (bytes) return up.addBuffered(digest, bytes, shown);
    const buf = buffers.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
    return up
      .addLarge(digest, size, shown, (writer) => streamFile(path, place, buf, signal, writer))
      .finally(() => buffers.push(buf));
  };

  const hashJob = (path: Buffer, place: Place) =>
    limit(async () => {
      signal.throwIfAborted();
      // Queued here before the read threads were ready: they read it now, as they do every later file.
      if (pool?.ready) {
        const readPool = pool;
        return new Promise<Hashed>((resolve, reject) =>
          readThroughPool(readPool, path, place, (error, hashed) =>
            error === undefined ? resolve(hashed!) : reject(error),
          ),
        );
      }
      // Sync reads of small files can run back to back in microtasks: let
      // timers (progress) and signals (SIGINT) in every few milliseconds.
      if (performance.now() - lastYield > YIELD_MS) {
        await new Promise((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
      const buf = buffers.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
      let hashed: Awaited<ReturnType<typeof hashFile>>;
      let bytes: Buffer | undefined;
      try {
        hashed = await hashFile(path, place, buf, signal, io);
        // Small: its bytes are in buf, copied (buf is reused).
        if (hashed.whole && uploader) bytes = Buffer.from(buf.subarray(0, hashed.size));
      } catch (e) {
        throw fileSystemError(e, place);
      } finally {
        buffers.push(buf);
      }
      if (uploader) {
        try {
          await upload(uploader, path, place, Digest.fromBytes(hashed.digest), hashed.size, bytes);
        } catch (e) {
          throw fileSystemError(e, place);
        }
      }
      return hashed;
    });

  /**
   * Files read by the read threads, answered through callbacks: no promise
   * per file (a chain of them per file, through p-limit, the pool and the
   * uploader, was about 4 µs of the main thread's time a file, plus its
   * garbage). At most POOL_IN_FLIGHT are being read, or waiting for the
   * uploader to take their bytes; the rest wait in `poolWaiting`.
   */
  let poolInFlight = 0;
  // A queue, not an array: shift() on an array of thousands moved every
  // element while the collector marked (2% of an import's CPU, profiled).
  const poolWaiting = new Queue<() => void>();
  const startWaiting = () => {
    while (poolInFlight < POOL_IN_FLIGHT && poolWaiting.size > 0) poolWaiting.dequeue()!();
  };
  const releasePoolSlot = () => {
    poolInFlight--;
    startWaiting();
  };
  const readThroughPool = (readPool: ReadPool, path: Buffer, place: Place, done: FileCallback) => {
    const start = () => {
      if (signal.aborted) return done(signal.reason); // takes no slot
      poolInFlight++;
      readPool.readWith(path, uploader !== undefined, (error, read) => {
        let waiting: Promise<void> | undefined;
        let hashed: Hashed;
        try {
          if (error !== undefined) throw error;
          signal.throwIfAborted();
          if ("kind" in read!) throw unsupported(place, read.kind);
          const { digest, size, executable, bytes } = read!;
          // Not `read`: its bytes would stay referenced until the file's directory is built.
          hashed = { digest, size, executable };
          if (uploader) waiting = upload(uploader, path, place, Digest.fromBytes(digest), size, bytes);
        } catch (e) {
          releasePoolSlot();
          return done(fileSystemError(e, place));
        }
        if (waiting === undefined) {
          releasePoolSlot();
          return done(undefined, hashed);
        }
        waiting.then(
          () => {
            releasePoolSlot();
            done(undefined, hashed);
          },
          (e: unknown) => {
            releasePoolSlot();
            done(fileSystemError(e, place));
          },
        );
      });
    };
    if (poolInFlight < POOL_IN_FLIGHT) start();
    else poolWaiting.enqueue(start);
  };

  /** Reads and hashes one file (and stores it, with contents), then calls `done`: through the read threads once they are ready, else on this thread. */
  const hashFileThen = (path: Buffer, place: Place, done: FileCallback) => {
    if (pool?.ready) return readThroughPool(pool, path, place, done);
    hashJob(path, place).then(
      (hashed) => done(undefined, hashed),
      (e: unknown) => done(e),
    );
  };

  const spool = new DirectorySpool(opts.spoolMemoryBytes ?? DEFAULT_SPOOL_MEMORY_BYTES, opts.spoolDir ?? tmpdir());
  const tree = new SpooledTree();

  /** Files handed to hashJob and not finished; the walk waits beyond listAhead (see listDirectory). */
  let filesInFlight = 0;
  let belowLimit: (() => void) | undefined;
  const fileFinished = () => {
    filesInFlight--;
    if (belowLimit && filesInFlight <= listAhead / 2) {
      belowLimit();
      belowLimit = undefined;
    }
  };

  /**
   * Lists one directory, and below it depth first, handing its files to
   * hashJob as it goes; resolves once everything below is *listed*, with
   * `done`: the directory's digest and size, which settle once its files are
   * hashed (and stored) and its subdirectories are done.
   *
   * Why two promises: the walk used to await each subdirectory whole, files
   * included, before listing its next sibling, so the read threads drained
   * at every directory and sat idle while the next one was listed (/usr/share:
   * ~80% idle). Now the listing runs ahead of the hashing, by at most
   * listAhead files (plus the directory being listed): that bounds the
   * memory, whatever the tree.
   *
   * The recursion is synchronous between awaits (the listing's calls are
   * sync), so it awaits once every YIELD_DEPTH levels: a chain of 1 000
   * levels between two anchors overflowed the stack under load (frames of
   * code not yet optimised are larger; a test imports a chain of 10 000).
   *
   * `path` is what the system calls use: the directory's path, or one from an anchor (see Anchors).
   */
  async function listDirectory(path: Buffer, place: Place, depth: number): Promise<Listed> {
    signal.throwIfAborted();
    if (filesInFlight >= listAhead) await new Promise<void>((resolve) => (belowLimit = resolve));
    // The stack unwinds here every YIELD_DEPTH levels (an await suspends every listing below).
    else if (depth % YIELD_DEPTH === 0) await undefined;
    signal.throwIfAborted();
    let anchor: number | undefined;
    if (path.length > ANCHOR_PATH_BYTES && canAnchor()) {
      anchor = await open(path, DIRECTORY_FLAGS).catch((e) => {
        throw fileSystemError(e, place);
      });
      path = Buffer.from(`/proc/self/fd/${anchor}`);
    }
    /** This directory's files being hashed: their answers are awaited before the anchor is closed too. */
    const files = new DirectoryFiles();
    /** Everything started below this directory, settled before its anchor is closed. */
    const started: Promise<unknown>[] = [files.allAnswered];
    const closeAnchor = async () => {
      if (anchor === undefined) return;
      // After a failure jobs may still be running with paths through the
      // anchor: closing it first could let a new descriptor take its number.
      await Promise.allSettled(started);
      await close(anchor);
    };
    try {
      let entries: Dirent<Buffer>[];
      try {
        entries = readdirSync(path, { encoding: "buffer", withFileTypes: true });
      } catch (e) {
        throw fileSystemError(e, place);
      }
      entries.sort((a, b) => compareBytes(a.name, b.name));
      const subdirectories: { name: Buffer; done: Promise<DirectoryDone> }[] = [];
      const filePlaces: Place[] = [];
      const symlinks: SymlinkNode[] = [];
      for (const entry of entries) {
        const name = entry.name;
        const childPath = join(path, name);
        const childPlace: Place = { parent: place, name };
        const st = entry; // node fills in the type with an lstat where readdir does not report it
        if (st.isDirectory()) {
          const { done } = await listDirectory(childPath, childPlace, depth + 1);
          started.push(done);
          subdirectories.push({ name, done });
        } else if (st.isFile()) {
          filesInFlight++;
          if (progress.listed++ === poolAfterFiles && readThreads > 0) pool = sharedReadPool(readThreads);
          const index = files.expect();
          hashFileThen(childPath, childPlace, (error, hashed) => {
            fileFinished();
            if (error === undefined) {
              try {
                const node = makeFileNode(name, hashed!.digest, hashed!.size, hashed!.executable);
                progress.files++;
                progress.bytes += hashed!.size;
                opts.onProgress?.(progress);
                return files.answer(index, node);
              } catch (e) {
                error = e;
              }
            }
            failed.abort(error); // the others stop, and the walk throws this error (the reason), not an AbortError
            files.fail(error);
          });
          filePlaces.push(childPlace);
        } else if (st.isSymbolicLink()) {
          let target: Buffer;
          try {
            target = readlinkSync(childPath, { encoding: "buffer" });
          } catch (e) {
            throw fileSystemError(e, childPlace);
          }
          symlinks.push(makeSymlinkNode(name, target));
        } else {
          throw unsupported(childPlace, kindOf(st));
        }
      }
      files.endOfListing();
      const done = (async (): Promise<DirectoryDone> => {
        try {
          const directories = await Promise.all(
            subdirectories.map(async ({ name, done }) => {
              const child = await done;
              return makeDirectoryNode(name, child.digest, child.size);
            }),
          );
          return completeDirectory(directories, await files.nodes(), symlinks, filePlaces);
        } finally {
          await closeAnchor();
        }
      })();
      done.catch(() => {}); // awaited by the parent once its listing ends; failures surface there
      return { done };
    } catch (e) {
      files.endOfListing();
      await closeAnchor();
      throw e;
    }
  }

  /** A directory whose entries are all known: encoded, spooled (after its subdirectories: leaves to root). */
  function completeDirectory(
    directories: DirectoryNode[],
    files: FileNode[],
    symlinks: SymlinkNode[],
    filePlaces: Place[],
  ): DirectoryDone {
    const directory = makeDirectory({ directories, files, symlinks });
    const bytes = encodeDirectory(directory);
    const digest = Digest.of(bytes);
    spool.add(bytes);
    tree.add(digest, directories);
    const deferred = filePlaces.flatMap((p) => {
      const d = deferredAt.get(p);
      deferredAt.delete(p);
      return d ? [d] : [];
    });
    if (deferred.length > 0 && !deferredIn.has(digest.hex)) deferredIn.set(digest.hex, deferred);
    progress.directories++;
    opts.onProgress?.(progress);
    return { digest, size: directorySize(directory) };
  }

  // The caller's signal reaches `failed` until the import ends (forwardAbort: nothing kept on a
  // long-lived caller's signal). Nothing above used `signal` yet.
  const stopForwarding = forwardAbort(opts.signal, failed);
  try {
    let walked: { digest: Digest };
    try {
      walked = await (await listDirectory(rootPath, rootPlace, 0)).done;
      // Every blob is stored, and durable, before the directories that name it are sent.
      await uploader?.finish();
    } catch (e) {
      failed.abort(e);
      await uploader?.finish().catch(() => {}); // its writes stop on the abort; none outlives the import
      throw e;
    }
    // Phase 2: the upload, opened only now that every directory is known. Where the store takes partial
    // uploads, it is asked top down which directories it lacks, and only those are sent (spec §3.5, §3.6).
    const missing = partial
      ? await missingTopDown(service, walked.digest, tree.childrenOf, {
          signal: opts.signal,
          onLevel: (asked, lacking) =>
            (progress.directoriesPresent = (progress.directoriesPresent ?? 0) + asked - lacking),
        })
      : undefined;
    if (uploader && deferredIn.size > 0) {
      // Deferred files: those of directories the store lacks are asked about now (and sent when missing, read
      // again); those of directories it holds are there (a stored directory holds its files' contents).
      const needed: Deferred[] = [];
      for (const [hex, files] of deferredIn) {
        if (missing?.has(hex)) needed.push(...files);
        else for (const f of files) uploader.skipKnown(f.size);
      }
      uploader.addDeferred(needed);
      await uploader.finish();
    }
    if (missing?.size === 0) {
      opts.onProgress?.(progress);
      return { digest: walked.digest, progress };
    }
    const putter = service.putMultipleStart({ signal: opts.signal, partial: missing !== undefined });
    try {
      let index = 0;
      for await (const bytes of spool.entries()) {
        if (missing && !missing.has(tree.digestAt(index++))) continue;
        await putter.put(decodeDirectory(bytes));
        progress.uploaded++;
        if ((progress.uploaded & 255) === 0) opts.onProgress?.(progress);
      }
      const digest = await putter.close();
      opts.onProgress?.(progress);
      if (!digest.equals(walked.digest))
        throw new Error(`the store answered root ${digest.hex}, the import computed ${walked.digest.hex}`);
      return { digest, progress };
    } catch (e) {
      await putter.abort(e).catch(() => {});
      if (opts.signal?.aborted) throw opts.signal.reason; // interrupted: the same error as during the walk
      throw e;
    }
  } finally {
    stopForwarding();
    spool.dispose();
    // A thread stopped while it starts can take the process down (see ReadPool.close), and a CLI
    // exits (stopping its threads) once the import returns: never while they start.
    await pool?.whenStarted();
  }
}
