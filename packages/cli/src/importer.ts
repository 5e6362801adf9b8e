/**
 * Imports a real directory tree in two phases:
 *
 * 1. Walk and hash. The tree is walked depth first; file contents are hashed
 *    with BLAKE3 (a bounded number of files at a time, across directories);
 *    each directory is built once all its entries are known, encoded, and
 *    appended to a spool, so children always precede parents (leaves to
 *    root). No upload is open during this phase.
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
 * holds only the directories on the current path and the files being
 * hashed.
 *
 * Names are bytes: paths are handled as Buffers end to end, so a name that
 * is not UTF-8 is read and stored exactly.
 */
import { closeSync, createReadStream, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import pLimit from "p-limit";
import {
  Digest,
  type DirectoryService,
  ValidationError,
  compareBytes,
  createBlake3Hasher,
  decodeDirectory,
  directorySize,
  encodeDirectory,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
  type DirectoryNode,
  type FileNode,
  type SymlinkNode,
} from "@castore/core";
import { escapeName } from "./names.js";

export interface ImportProgress {
  files: number;
  bytes: number;
  directories: number;
  /** Directories sent to the store (the upload phase, after the walk). */
  uploaded: number;
}

export interface ImportOptions {
  /** Files hashed at once (default 8). */
  concurrency?: number;
  /** Encoded directories kept in memory before the spool spills to a temporary file (default 64 MiB; 0: always spill). */
  spoolMemoryBytes?: number;
  /** Where the spool's temporary file goes (default: the OS temporary directory). */
  spoolDir?: string;
  onProgress?(p: ImportProgress): void;
  signal?: AbortSignal;
}

export const DEFAULT_SPOOL_MEMORY_BYTES = 64 * 1024 * 1024;

/** A file type castore cannot store (socket, device, FIFO): refused with its path. */
export class UnsupportedFileTypeError extends ValidationError {}

const SLASH = Buffer.from("/");
/** Spool write and read block. */
const CHUNK = 1 << 20;

function join(parent: Buffer, name: Buffer): Buffer {
  return Buffer.concat([parent, SLASH, name]);
}

function kindOf(st: { isSocket(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean }): string {
  return st.isSocket() ? "socket" : st.isFIFO() ? "FIFO" : st.isCharacterDevice() || st.isBlockDevice() ? "device" : "special file";
}

function unsupported(path: Buffer, kind: string): UnsupportedFileTypeError {
  return new UnsupportedFileTypeError(`cannot import ${escapeName(path)}: it is a ${kind}; castore stores only directories, regular files and symlinks`);
}

async function hashFile(path: Buffer, signal: AbortSignal): Promise<{ digest: Uint8Array; size: number }> {
  const hasher = createBlake3Hasher();
  let size = 0;
  const stream = createReadStream(path, { highWaterMark: 1 << 20, signal });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hasher.update(chunk);
    size += chunk.length;
  }
  return { digest: hasher.digest(), size };
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

  get spilled(): boolean {
    return this.file !== undefined;
  }

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
    for (let off = 0; off < data.length; ) off += writeSync(this.file.fd, data, off);
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

export async function importTree(
  service: DirectoryService,
  root: string,
  opts: ImportOptions = {},
): Promise<{ digest: Digest; progress: ImportProgress }> {
  const concurrency = opts.concurrency ?? 8;
  const limit = pLimit(concurrency);
  // Stops queued hashing jobs once the import has failed or is interrupted.
  const failed = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, failed.signal]) : failed.signal;
  const progress: ImportProgress = { files: 0, bytes: 0, directories: 0, uploaded: 0 };
  const rootPath = Buffer.from(root);
  const rootStat = await lstat(rootPath);
  if (!rootStat.isDirectory()) throw new ValidationError(`${root} is not a directory; castore import takes a directory`);

  const hashJob = (path: Buffer) =>
    limit(async () => {
      signal.throwIfAborted();
      return await hashFile(path, signal);
    });

  const spool = new DirectorySpool(opts.spoolMemoryBytes ?? DEFAULT_SPOOL_MEMORY_BYTES, opts.spoolDir ?? tmpdir());

  async function importDirectory(path: Buffer): Promise<{ digest: Digest; size: bigint }> {
    signal.throwIfAborted();
    const names = (await readdir(path, { encoding: "buffer" })).sort(compareBytes);
    const directories: DirectoryNode[] = [];
    const symlinks: SymlinkNode[] = [];
    const fileJobs: Promise<FileNode>[] = [];
    for (const name of names) {
      const childPath = join(path, name);
      const st = await lstat(childPath);
      if (st.isDirectory()) {
        const child = await importDirectory(childPath);
        directories.push(makeDirectoryNode(name, child.digest, child.size));
      } else if (st.isFile()) {
        // Started now, awaited after the subdirectories: hashing overlaps the walk.
        const executable = (st.mode & 0o100) !== 0;
        const job = hashJob(childPath).then(({ digest, size }) => {
          progress.files++;
          progress.bytes += size;
          opts.onProgress?.(progress);
          return makeFileNode(name, digest, size, executable);
        });
        job.catch(() => failed.abort()); // the others stop; the error is thrown by the await below
        fileJobs.push(job);
      } else if (st.isSymbolicLink()) {
        symlinks.push(makeSymlinkNode(name, await readlink(childPath, { encoding: "buffer" })));
      } else {
        throw unsupported(childPath, kindOf(st));
      }
    }
    const files = await Promise.all(fileJobs);
    const directory = makeDirectory({ directories, files, symlinks });
    const bytes = encodeDirectory(directory);
    spool.add(bytes);
    progress.directories++;
    opts.onProgress?.(progress);
    return { digest: Digest.of(bytes), size: directorySize(directory) };
  }

  try {
    let walked: { digest: Digest };
    try {
      walked = await importDirectory(rootPath);
    } catch (e) {
      failed.abort(e);
      throw e;
    }
    // Phase 2: the upload, opened only now that every directory is known.
    const putter = service.putMultipleStart({ signal: opts.signal });
    try {
      for await (const bytes of spool.entries()) {
        await putter.put(decodeDirectory(bytes));
        progress.uploaded++;
        if ((progress.uploaded & 255) === 0) opts.onProgress?.(progress);
      }
      const digest = await putter.close();
      opts.onProgress?.(progress);
      if (!digest.equals(walked.digest)) throw new Error(`the store answered root ${digest.hex}, the import computed ${walked.digest.hex}`);
      return { digest, progress };
    } catch (e) {
      await putter.abort(e).catch(() => {});
      if (opts.signal?.aborted) throw opts.signal.reason; // interrupted: the same error as during the walk
      throw e;
    }
  } finally {
    spool.dispose();
  }
}
