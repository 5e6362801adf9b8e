/**
 * InProcessCollector: mark and sweep in this process, for stores whose
 * objects this process reads cheaply (memory, LMDB). Spec §10 is the
 * argument for why it is safe beside uploads; in short:
 *
 * - Roots are every ref, every `keep` digest, and every object used since
 *   the cutoff (now minus grace): a young object is never deleted, nor
 *   anything it names.
 * - Only objects not reached from a root and still unused since the cutoff
 *   are deleted, and the store re-checks "unused since" as it deletes each
 *   (CollectableStore.deleteUnusedSince), so one that an upload wrote again
 *   or relied on meanwhile is spared.
 * - Directories go parents first (by their size, spec §1: a parent's is
 *   larger than any child's), then blobs, then chunks: a collection stopped
 *   at any point leaves no stored object naming a deleted one.
 *
 * Memory: a key per live object, plus each garbage object's digest and size
 * until it is deleted (the order of deletion needs the whole garbage list).
 */
import { decodeDirectory } from "../canonical.js";
import { Digest, digestKey, digestKeyBytes } from "../digest.js";
import { throwIfAborted } from "../errors.js";
import { directorySize } from "../model.js";
import type { DirectoryStore } from "../store-service.js";
import type { BlobStore } from "../blob/service.js";
import type { RefStore } from "../refs/service.js";
import type { CollectableStore } from "./collectable.js";
import { walkDirectories } from "./walk.js";
import {
  emptyReport,
  graceOf,
  type CollectOptions,
  type CollectReport,
  type GarbageCollector,
  type ObjectKind,
  OBJECT_KINDS,
} from "./collector.js";

/** The parts of one store a collection reads and deletes from. */
export interface CollectableParts {
  objects: CollectableStore;
  directories: DirectoryStore;
  /** Absent for a store without blobs: file blobs are then not looked for. */
  blobs?: BlobStore;
  /** Absent for a store without refs: only `keep` digests and young objects are roots. */
  refs?: RefStore;
}

/** Objects read or deleted per store call. */
const BATCH = 512;

type LiveSets = Record<ObjectKind, Set<string>>;

export class InProcessCollector implements GarbageCollector {
  readonly backend: string;

  constructor(
    private readonly parts: CollectableParts,
    /** Closes the stores when the collector is closed (the collector opened them). */
    private readonly closeParts?: () => Promise<void>,
  ) {
    this.backend = parts.objects.backend;
  }

  async collect(opts: CollectOptions = {}): Promise<CollectReport> {
    const graceMs = graceOf(opts);
    const report = emptyReport(await this.parts.objects.startCollection(), graceMs, opts);
    const { cutoff } = report;
    const live = await this.mark(cutoff, report, opts);
    for (const kind of OBJECT_KINDS) report.live[kind] = live[kind].size;
    for (const kind of OBJECT_KINDS) await this.sweep(kind, live, cutoff, report, opts);
    return report;
  }

  async close(): Promise<void> {
    await this.closeParts?.();
  }

  private async mark(cutoff: number, report: CollectReport, opts: CollectOptions): Promise<LiveSets> {
    const { signal } = opts;
    const live: LiveSets = { directory: new Set(), blob: new Set(), chunk: new Set() };
    const named: Digest[] = [...(opts.keep ?? [])];
    if (this.parts.refs) for await (const ref of this.parts.refs.listRefs({ signal })) named.push(ref.digest);
    report.roots = named.length;
    // Every young object is a root too; a young directory's closure and a young blob's chunks are kept with it.
    const young: Record<ObjectKind, Digest[]> = { directory: [], blob: [], chunk: [] };
    for (const kind of OBJECT_KINDS) {
      for await (const o of this.parts.objects.listObjects(kind, signal))
        if (o.usedAt >= cutoff) young[kind].push(o.digest);
    }
    // A named root is a directory, else a blob (a `keep` of a file's contents), else missing.
    const namedDirectories: Digest[] = [];
    const found = await this.readDirectories(named, signal);
    const notDirectories = named.filter((_, i) => found[i] === undefined);
    const asBlobs = await this.blobsStored(notDirectories, signal);
    named.forEach((d, i) => found[i] !== undefined && namedDirectories.push(d));
    notDirectories.forEach((d, i) => (asBlobs[i] ? young.blob.push(d) : report.missingRoots.push(d)));

    await this.markDirectories([...namedDirectories, ...young.directory], live, opts);
    for (const d of young.blob) live.blob.add(digestKey(d.bytes));
    await this.markChunks(live, signal);
    for (const d of young.chunk) live.chunk.add(digestKey(d.bytes));
    return live;
  }

  private async readDirectories(digests: readonly Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]> {
    const out: (Uint8Array | undefined)[] = [];
    for (let i = 0; i < digests.length; i += BATCH)
      out.push(...(await this.parts.directories.getMany(digests.slice(i, i + BATCH), signal)));
    return out;
  }

  private async blobsStored(digests: readonly Digest[], signal?: AbortSignal): Promise<boolean[]> {
    if (!this.parts.blobs || digests.length === 0) return digests.map(() => false);
    const out: boolean[] = [];
    for (let i = 0; i < digests.length; i += BATCH)
      out.push(...(await this.parts.blobs.has(digests.slice(i, i + BATCH), { signal })));
    return out;
  }

  /** Every directory reachable from the roots, and the blobs their files name. */
  private async markDirectories(roots: readonly Digest[], live: LiveSets, opts: CollectOptions): Promise<void> {
    await walkDirectories(
      this.parts.directories,
      roots,
      live.directory,
      {
        visit(_digest, directory) {
          for (const file of directory.files) live.blob.add(digestKey(file.digest));
        },
        // Gone: a young directory another collection deleted as this one listed it, or a store already damaged.
        missing() {},
        progress: (seen) => opts.onProgress?.({ phase: "mark", done: seen }),
      },
      opts.signal,
    );
  }

  /** Every live blob's chunks; a blob's own digest counts as a chunk too (a blob of one chunk is that chunk). */
  private async markChunks(live: LiveSets, signal?: AbortSignal): Promise<void> {
    const blobs = this.parts.blobs;
    for (const key of live.blob) {
      live.chunk.add(key);
      if (!blobs) continue;
      throwIfAborted(signal);
      const manifest = await blobs.getManifest(Digest.fromBytes(digestKeyBytes(key)), { signal });
      for (const c of manifest ?? []) live.chunk.add(digestKey(c.digest.bytes));
    }
  }

  private async sweep(
    kind: ObjectKind,
    live: LiveSets,
    cutoff: number,
    report: CollectReport,
    opts: CollectOptions,
  ): Promise<void> {
    const { signal } = opts;
    let garbage: { digest: Digest; size: number }[] = [];
    for await (const o of this.parts.objects.listObjects(kind, signal)) {
      if (o.usedAt < cutoff && !live[kind].has(digestKey(o.digest.bytes)))
        garbage.push({ digest: o.digest, size: o.size });
    }
    if (kind === "directory") garbage = await this.parentsFirst(garbage, signal);
    const total = garbage.length;
    opts.onProgress?.({ phase: "sweep", kind, done: 0, total });
    for (let i = 0; i < garbage.length; i += BATCH) {
      throwIfAborted(signal);
      const batch = garbage.slice(i, i + BATCH);
      if (report.dryRun) {
        report.deleted[kind] += batch.length;
        for (const g of batch) report.deletedBytes += g.size;
      } else {
        const deleted = await this.parts.objects.deleteUnusedSince(
          kind,
          batch.map((g) => g.digest),
          cutoff,
          signal,
        );
        report.deleted[kind] += deleted.length;
        report.spared += batch.length - deleted.length;
        for (const d of deleted) report.deletedBytes += d.size;
      }
      opts.onProgress?.({ phase: "sweep", kind, done: Math.min(total, i + batch.length), total });
    }
  }

  /**
   * Garbage directories in an order where every parent comes before its
   * children: by size, largest first. One that cannot be decoded goes first:
   * deleting a parent early is always safe, and it names nothing we can know.
   */
  private async parentsFirst(garbage: { digest: Digest; size: number }[], signal?: AbortSignal) {
    const sized: { digest: Digest; size: number; treeSize: bigint }[] = [];
    for (let i = 0; i < garbage.length; i += BATCH) {
      const batch = garbage.slice(i, i + BATCH);
      const stored = await this.parts.directories.getMany(
        batch.map((g) => g.digest),
        signal,
      );
      batch.forEach((g, j) => sized.push({ ...g, treeSize: treeSizeOf(stored[j]) }));
    }
    return sized.sort((a, b) => (a.treeSize > b.treeSize ? -1 : a.treeSize < b.treeSize ? 1 : 0));
  }
}

const UNKNOWN_SIZE = 1n << 70n;

function treeSizeOf(bytes: Uint8Array | undefined): bigint {
  if (bytes === undefined) return UNKNOWN_SIZE;
  try {
    return directorySize(decodeDirectory(bytes));
  } catch {
    return UNKNOWN_SIZE;
  }
}
