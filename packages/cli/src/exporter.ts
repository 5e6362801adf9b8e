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
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, rmdir, symlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import pLimit from "p-limit";
import {
  type BlobService,
  CorruptionError,
  Digest,
  type DirectoryService,
  directoryDigest,
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
  /** Files written at once (default 4). */
  concurrency?: number;
  onProgress?(p: ExportProgress): void;
  signal?: AbortSignal;
}

const SLASH = Buffer.from("/");

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
  const limit = pLimit(opts.concurrency ?? 4);
  const writes = new Set<Promise<void>>();
  let failure: unknown;
  try {
    // Where each directory still to be received goes (a digest may be at several paths).
    const pending = new Map<string, Buffer[]>([[root.hex, [Buffer.from(tmp)]]]);
    for await (const directory of directories.getRecursive(root, { signal: opts.signal })) {
      if (failure !== undefined) throw failure;
      const digest = directoryDigest(directory);
      const paths = pending.get(digest.hex);
      if (!paths) throw new CorruptionError(`the store sent directory ${digest}, which nothing above it refers to`);
      pending.delete(digest.hex);
      for (const path of paths) {
        if (path.length !== tmp.length) await mkdir(path);
        progress.directories++;
        for (const link of directory.symlinks) await symlink(Buffer.from(link.target), join2(path, link.name));
        for (const child of directory.directories) {
          const key = Digest.fromBytes(child.digest).hex;
          const list = pending.get(key) ?? [];
          list.push(join2(path, child.name));
          pending.set(key, list);
        }
        for (const file of directory.files) {
          const target = join2(path, file.name);
          const write = limit(() =>
            writeFile(
              blobs,
              Digest.fromBytes(file.digest),
              target,
              target.subarray(tmp.length + 1),
              file.executable,
              opts.signal,
            ),
          ).then(
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
          // bounded: wait while more files are queued than are being written
          while (limit.pendingCount > (opts.concurrency ?? 4)) await Promise.race(writes);
        }
      }
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
    limit.clearQueue();
    await Promise.allSettled(writes);
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

function join2(parent: Buffer, name: Uint8Array): Buffer {
  return Buffer.concat([parent, SLASH, name]);
}

async function writeFile(
  blobs: BlobService,
  digest: Digest,
  path: Buffer,
  /** The path below DEST, for messages. */
  shown: Uint8Array,
  executable: boolean,
  signal: AbortSignal | undefined,
): Promise<number> {
  const stream = await blobs.read(digest, { signal });
  if (!stream) throw new NotFoundError(`${escapeName(shown)}: blob ${digest} is missing from the store`);
  let bytes = 0;
  const counted = (async function* () {
    for await (const part of stream) {
      bytes += part.length;
      yield part;
    }
  })();
  await pipeline(
    Readable.from(counted, { objectMode: false }),
    createWriteStream(path, { mode: executable ? 0o755 : 0o644 }),
    {
      signal,
    },
  );
  return bytes;
}
