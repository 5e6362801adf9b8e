/**
 * Imports a real directory tree: walks it depth first, hashes file contents
 * with BLAKE3 (streamed, a bounded number at a time), builds each directory
 * once all its entries are known, and puts directories into one upload as
 * they complete, so children always precede parents (leaves to root).
 *
 * Names are bytes: paths are handled as Buffers end to end, so a name that
 * is not UTF-8 is read and stored exactly.
 */
import { createReadStream } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import pLimit from "p-limit";
import {
  type Digest,
  type DirectoryPutter,
  type DirectoryService,
  ValidationError,
  compareBytes,
  createBlake3Hasher,
  directoryDigest,
  directorySize,
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
}

export interface ImportOptions {
  /** Files hashed at once. */
  concurrency?: number;
  onProgress?(p: ImportProgress): void;
  signal?: AbortSignal;
}

/** A file type castore cannot store (socket, device, FIFO): refused with its path. */
export class UnsupportedFileTypeError extends ValidationError {}

const SLASH = Buffer.from("/");

function join(parent: Buffer, name: Buffer): Buffer {
  return Buffer.concat([parent, SLASH, name]);
}

async function hashFile(path: Buffer, signal?: AbortSignal): Promise<{ digest: Uint8Array; size: number }> {
  const hasher = createBlake3Hasher();
  let size = 0;
  const stream = createReadStream(path, { highWaterMark: 1 << 20, signal });
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hasher.update(chunk);
    size += chunk.length;
  }
  return { digest: hasher.digest(), size };
}

export async function importTree(
  service: DirectoryService,
  root: string,
  opts: ImportOptions = {},
): Promise<{ digest: Digest; progress: ImportProgress }> {
  const limit = pLimit(opts.concurrency ?? 8);
  const progress: ImportProgress = { files: 0, bytes: 0, directories: 0 };
  const rootPath = Buffer.from(root);
  const rootStat = await lstat(rootPath);
  if (!rootStat.isDirectory()) throw new ValidationError(`${root} is not a directory; castore import takes a directory`);

  const putter: DirectoryPutter = service.putMultipleStart({ signal: opts.signal });
  // Puts are issued in completion order, one at a time.
  let putChain: Promise<void> = Promise.resolve();
  const enqueuePut = (d: ReturnType<typeof makeDirectory>) => {
    putChain = putChain.then(() => putter.put(d));
    return putChain;
  };

  async function importDirectory(path: Buffer): Promise<{ digest: Digest; size: bigint }> {
    const names = (await readdir(path, { encoding: "buffer" })).sort(compareBytes);
    const directories: DirectoryNode[] = [];
    const files: (FileNode | undefined)[] = new Array(names.length);
    const symlinks: SymlinkNode[] = [];
    const fileJobs: Promise<void>[] = [];
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      const childPath = join(path, name);
      const st = await lstat(childPath);
      if (st.isDirectory()) {
        const child = await importDirectory(childPath);
        directories.push(makeDirectoryNode(name, child.digest, child.size));
      } else if (st.isFile()) {
        const executable = (st.mode & 0o100) !== 0;
        fileJobs.push(
          limit(async () => {
            const { digest, size } = await hashFile(childPath, opts.signal);
            files[i] = makeFileNode(name, digest, size, executable);
            progress.files++;
            progress.bytes += size;
            opts.onProgress?.(progress);
          }),
        );
      } else if (st.isSymbolicLink()) {
        symlinks.push(makeSymlinkNode(name, await readlink(childPath, { encoding: "buffer" })));
      } else {
        const kind = st.isSocket() ? "socket" : st.isFIFO() ? "FIFO" : st.isCharacterDevice() || st.isBlockDevice() ? "device" : "special file";
        throw new UnsupportedFileTypeError(`cannot import ${escapeName(childPath)}: it is a ${kind}; castore stores only directories, regular files and symlinks`);
      }
    }
    await Promise.all(fileJobs);
    const directory = makeDirectory({ directories, files: files.filter((f): f is FileNode => f !== undefined), symlinks });
    await enqueuePut(directory);
    progress.directories++;
    opts.onProgress?.(progress);
    return { digest: directoryDigest(directory), size: directorySize(directory) };
  }

  try {
    await importDirectory(rootPath);
    await putChain;
    const digest = await putter.close();
    return { digest, progress };
  } catch (e) {
    await putter.abort(e).catch(() => {});
    throw e;
  }
}
