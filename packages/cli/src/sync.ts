/**
 * `castore sync`: copies trees from one store to another, sending only what
 * the destination lacks. Per root: the source's closure is read (re-hashed,
 * sizes checked); the destination is asked which of its directories it
 * lacks, top down (the root, then the children of each missing one: a
 * stored directory has its whole closure); it is asked which blobs of the
 * missing directories' files it has (`has`, in batches), and only the
 * missing ones are streamed across, each re-hashed on the way; then the
 * missing directories go as one partial upload (spec §3.6; the whole
 * closure to a store without partial uploads); then the ref, if the root
 * was named by one. Blobs before directories before the ref: a run stopped
 * anywhere leaves nothing that names what is missing, and running it again
 * finishes the work.
 */
import pLimit from "p-limit";
import {
  type BlobService,
  CorruptionError,
  Digest,
  type Directory,
  type DirectoryService,
  childrenIn,
  missingTopDown,
  readClosure,
  type RefService,
  throwIfAborted,
  writeClosure,
} from "@castore-ts/core";

export interface SyncSide {
  directories: DirectoryService;
  /** Absent when the store keeps no blobs: then none are copied. */
  blobs?: BlobService;
  refs?: RefService;
}

export interface SyncRoot {
  digest: Digest;
  /** Set the same ref in the destination once the tree is there. */
  ref?: string;
}

export interface SyncCounts {
  trees: number;
  /** Trees whose root the destination held already. */
  treesPresent: number;
  directoriesSent: number;
  blobsSent: number;
  blobBytesSent: number;
  blobsPresent: number;
  /** Files whose blob neither store has (a tree imported without contents). */
  blobsMissingInSource: number;
  refsSet: string[];
}

export interface SyncOptions {
  /** Blobs copied at once (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?(counts: SyncCounts): void;
}

/** Digests per `has` call. */
const HAS_BATCH = 1000;

export async function syncRoots(
  src: SyncSide,
  dst: SyncSide,
  roots: readonly SyncRoot[],
  opts: SyncOptions = {},
): Promise<SyncCounts> {
  const counts: SyncCounts = {
    trees: 0,
    treesPresent: 0,
    directoriesSent: 0,
    blobsSent: 0,
    blobBytesSent: 0,
    blobsPresent: 0,
    blobsMissingInSource: 0,
    refsSet: [],
  };
  const { signal } = opts;
  for (const root of roots) {
    throwIfAborted(signal);
    const closure = await readClosure(src.directories, root.digest, { signal });
    if (closure.byDigest.size === 0) throw new CorruptionError(`the source holds no tree ${root.digest.hex}`);
    // Top down: nothing below a directory DST holds is asked about or sent. Such a directory is taken to
    // hold its files' contents too, as after an import or a sync (castore verify --blobs checks that).
    const missing = await missingTopDown(dst.directories, root.digest, childrenIn(closure), { signal });
    if (missing.size === 0) counts.treesPresent++;
    else {
      // Blobs first: a directory is never stored before the contents of its files.
      if (src.blobs && dst.blobs) {
        const missingDirectories = [...missing].map((hex) => closure.byDigest.get(hex)!);
        await copyBlobs(src.blobs, dst.blobs, fileBlobs(missingDirectories), counts, opts);
      }
      counts.directoriesSent += await writeClosure(dst.directories, closure, { signal, missing });
    }
    counts.trees++;
    if (root.ref && dst.refs) {
      await dst.refs.set(root.ref, root.digest, { signal });
      counts.refsSet.push(root.ref);
    }
    opts.onProgress?.(counts);
  }
  return counts;
}

/** Every file's blob in these directories, once each. */
function fileBlobs(directories: Iterable<Directory>): Digest[] {
  const byHex = new Map<string, Digest>();
  for (const d of directories) {
    for (const f of d.files) {
      const digest = Digest.fromBytes(f.digest);
      byHex.set(digest.hex, digest);
    }
  }
  return [...byHex.values()];
}

async function copyBlobs(
  src: BlobService,
  dst: BlobService,
  digests: Digest[],
  counts: SyncCounts,
  opts: SyncOptions,
): Promise<void> {
  const limit = pLimit(opts.concurrency ?? 4);
  for (let i = 0; i < digests.length; i += HAS_BATCH) {
    throwIfAborted(opts.signal);
    const batch = digests.slice(i, i + HAS_BATCH);
    const present = await dst.has(batch, { signal: opts.signal });
    counts.blobsPresent += present.filter(Boolean).length;
    const missing = batch.filter((_, j) => !present[j]);
    await Promise.all(missing.map((digest) => limit(() => copyBlob(src, dst, digest, counts, opts))));
    opts.onProgress?.(counts);
  }
}

async function copyBlob(
  src: BlobService,
  dst: BlobService,
  digest: Digest,
  counts: SyncCounts,
  opts: SyncOptions,
): Promise<void> {
  const stream = await src.read(digest, { signal: opts.signal });
  if (!stream) {
    counts.blobsMissingInSource++;
    return;
  }
  const writer = dst.openWriter({ signal: opts.signal });
  try {
    // The source's reader verifies every chunk and the whole blob; the writer hashes again.
    for await (const piece of stream) await writer.write(piece);
    const written = await writer.close();
    if (!written.digest.equals(digest))
      throw new CorruptionError(`blob ${digest.hex} arrived as ${written.digest.hex}: the source sent other bytes`);
    counts.blobsSent++;
    counts.blobBytesSent += written.size;
  } catch (e) {
    await writer.abort().catch(() => {});
    throw e;
  }
}
