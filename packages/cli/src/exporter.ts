/**
 * Writes a stored tree to the file system (`castore export`).
 *
 * Nothing half-written at DEST: the tree is written into a temporary sibling
 * of DEST and renamed into place at the end; on failure or cancellation the
 * temporary tree is removed. Directories come from getRecursive (root to
 * leaves, each once); a directory reached by several paths is written at
 * each. Names and symlink targets are bytes: paths are Buffers throughout.
 * File contents stream from the blob service, verified as they are read,
 * a bounded number of files at a time.
 */
import { mkdir, mkdtemp, open, readdir, rename, rm, rmdir, symlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import pLimit from "p-limit";
import {
  type BlobService,
  CorruptionError,
  Digest,
  type Directory,
  type DirectoryService,
  type FileNode,
  directoryDigest,
  hexOf,
  NotFoundError,
  ValidationError,
} from "@castore-ts/core";
import { escapeName } from "./names.js";

export interface ExportProgress {
  directories: number;
  files: number;
  bytes: number;
}

export interface ExportOptions {
  /** Files written at once (default DEFAULT_EXPORT_CONCURRENCY). */
  concurrency?: number;
  onProgress?(p: ExportProgress): void;
  signal?: AbortSignal;
}

const SLASH = Buffer.from("/");
/** Files written at once: most are small, and each waits on a read from the store and a few system calls. */
export const DEFAULT_EXPORT_CONCURRENCY = 16;

/** DEST must not exist, or be an empty directory (which the export replaces). */
async function checkDestination(dest: string): Promise<boolean> {
  try {
    const entries = await readdir(dest);
    if (entries.length > 0) throw new ValidationError(`${dest} exists and is not empty; export needs a new path`);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return false;
    if ((e as NodeJS.ErrnoException).code === "ENOTDIR")
      throw new ValidationError(`${dest} exists and is not a directory; export needs a new path`);
    throw e;
  }
}

export async function exportTree(
  directories: DirectoryService,
  blobs: BlobService,
  root: Digest,
  dest: string,
  opts: ExportOptions = {},
): Promise<ExportProgress> {
  const emptyDest = await checkDestination(dest);
  if (!(await directories.get(root, { signal: opts.signal })))
    throw new NotFoundError(`directory ${root} not found in the store`);
  const tmp = await mkdtemp(join(dirname(dest), `.${basename(dest)}.castore-export-`));
  const progress: ExportProgress = { directories: 0, files: 0, bytes: 0 };
  const concurrency = opts.concurrency ?? DEFAULT_EXPORT_CONCURRENCY;
  const limit = pLimit(concurrency);
  const writes = new Set<Promise<void>>();
  let failure: unknown;
  try {
    // Where each directory still to be received goes (a digest may be at several paths).
    const pending = new Map<string, Buffer[]>([[root.hex, [Buffer.from(tmp)]]]);
    // Every directory received, by digest: a later parent may refer to one
    // already received (getRecursive yields each digest once, and a shared
    // directory, the empty one above all, can be reached again deeper down).
    // Directories only, never contents: the tree's metadata.
    const received = new Map<string, Directory>();

    const startFile = (file: FileNode, path: Buffer) => {
      const write = limit(() => {
        // Queued writes after a failure or an interruption end at once (not dropped: see the catch below).
        if (failure !== undefined) throw failure;
        opts.signal?.throwIfAborted();
        return writeFile(blobs, file, path, path.subarray(tmp.length + 1), opts.signal);
      }).then(
        (bytes) => {
          progress.files++;
          progress.bytes += bytes;
          opts.onProgress?.(progress);
          writes.delete(write);
        },
        (e: unknown) => {
          failure ??= e;
          writes.delete(write);
        },
      );
      writes.add(write);
    };

    /** Writes `directory` at `path`: its symlinks and files now, its subdirectories now or once received. */
    const materialize = async (directory: Directory, path: Buffer): Promise<void> => {
      if (path.length !== tmp.length) await mkdir(path);
      progress.directories++;
      for (const link of directory.symlinks) await symlink(Buffer.from(link.target), join2(path, link.name));
      for (const file of directory.files) {
        startFile(file, join2(path, file.name));
        // bounded: wait while more files are queued than are being written
        while (limit.pendingCount > concurrency) await Promise.race(writes);
      }
      for (const child of directory.directories) {
        const key = hexOf(child.digest);
        const childPath = join2(path, child.name);
        const known = received.get(key);
        if (known) await materialize(known, childPath);
        else {
          const list = pending.get(key);
          if (list) list.push(childPath);
          else pending.set(key, [childPath]);
        }
      }
    };

    for await (const directory of directories.getRecursive(root, { signal: opts.signal })) {
      if (failure !== undefined) throw failure;
      const digest = directoryDigest(directory);
      const paths = pending.get(digest.hex);
      if (!paths) throw new CorruptionError(`the store sent directory ${digest}, which nothing above it refers to`);
      pending.delete(digest.hex);
      received.set(digest.hex, directory);
      for (const path of paths) await materialize(directory, path);
      opts.onProgress?.(progress);
    }
    await Promise.all(writes);
    if (failure !== undefined) throw failure;
    if (pending.size > 0) {
      const [missing] = pending.keys();
      throw new NotFoundError(`directory ${missing} is missing from the store (its closure is incomplete)`);
    }
    if (emptyDest) await rmdir(dest);
    await rename(tmp, dest);
    return progress;
  } catch (e) {
    // Not limit.clearQueue(): a dropped task's promise never settles, and this
    // wait (then the whole command) would hang on it; queued writes fail fast.
    await Promise.allSettled(writes);
    await rm(tmp, { recursive: true, force: true });
    if (opts.signal?.aborted) throw opts.signal.reason; // interrupted: say so, not which call noticed
    throw e;
  }
}

function join2(parent: Buffer, name: Uint8Array): Buffer {
  return Buffer.concat([parent, SLASH, name]);
}

/**
 * Writes one file from its blob: open (exclusive, with the mode), the verified
 * parts as they come, close. Plain file-handle writes, not a stream pipeline:
 * most files are small, and a pipeline per file cost more than the file.
 */
async function writeFile(
  blobs: BlobService,
  file: FileNode,
  path: Buffer,
  /** The path below DEST, for messages. */
  shown: Uint8Array,
  signal: AbortSignal | undefined,
): Promise<number> {
  const digest = Digest.fromBytes(file.digest);
  const stream = await blobs.read(digest, { signal });
  if (!stream) throw new NotFoundError(`${escapeName(shown)}: blob ${digest} is missing from the store`);
  const handle = await open(path, "wx", file.executable ? 0o755 : 0o644);
  let bytes = 0;
  try {
    for await (const part of stream) {
      signal?.throwIfAborted();
      for (let off = 0; off < part.length;) off += (await handle.write(part, off, part.length - off)).bytesWritten;
      bytes += part.length;
    }
  } finally {
    await handle.close();
  }
  if (BigInt(bytes) !== file.size)
    throw new CorruptionError(
      `${escapeName(shown)}: blob ${digest} has ${bytes} bytes, its directory declares ${file.size}`,
    );
  return bytes;
}
