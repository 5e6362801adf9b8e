/**
 * TEST ONLY: garbage collectors each with one realistic bug, built over a
 * correct store's parts (CollectableParts), to prove the gc.* scenarios fail
 * them. A backend's tests wrap their own store with these (the memory
 * backend's do). Exported from `@castore-ts/conformance/broken`.
 */
import {
  type CollectableParts,
  type CollectableStore,
  type CollectOptions,
  type CollectReport,
  type Digest,
  type GarbageCollector,
  InProcessCollector,
  type ObjectKind,
  type StoredObject,
} from "@castore-ts/core";

export interface BrokenCollector {
  /** The bug, in one line. */
  bug: string;
  open(parts: CollectableParts): GarbageCollector;
}

/** A CollectableStore that forwards to a correct one; the broken ones override one step. */
class ForwardingObjects implements CollectableStore {
  readonly backend: string;
  constructor(protected readonly inner: CollectableStore) {
    this.backend = `${inner.backend} (broken collector)`;
  }
  startCollection(): Promise<number> {
    return this.inner.startCollection();
  }
  listObjects(kind: ObjectKind, signal?: AbortSignal): AsyncIterable<StoredObject> {
    return this.inner.listObjects(kind, signal);
  }
  deleteUnusedSince(kind: ObjectKind, digests: readonly Digest[], cutoff: number, signal?: AbortSignal) {
    return this.inner.deleteUnusedSince(kind, digests, cutoff, signal);
  }
  touch(kind: ObjectKind, digests: readonly Digest[], signal?: AbortSignal): Promise<boolean[]> {
    return this.inner.touch(kind, digests, signal);
  }
}

/** Every object looks old, and deletion does not re-check: young objects and uploads in progress are fair game. */
class IgnoresGrace extends ForwardingObjects {
  override async *listObjects(kind: ObjectKind, signal?: AbortSignal): AsyncIterable<StoredObject> {
    for await (const o of this.inner.listObjects(kind, signal)) yield { ...o, usedAt: Number.NEGATIVE_INFINITY };
  }
  override deleteUnusedSince(kind: ObjectKind, digests: readonly Digest[], _cutoff: number, signal?: AbortSignal) {
    return this.inner.deleteUnusedSince(kind, digests, Number.POSITIVE_INFINITY, signal);
  }
}

/** Deletes garbage directories leaves first and dies half way through: parents are left naming deleted children. */
class ChildrenFirstThenDies extends ForwardingObjects {
  override async deleteUnusedSince(kind: ObjectKind, digests: readonly Digest[], cutoff: number, signal?: AbortSignal) {
    if (kind !== "directory" || digests.length < 2) return this.inner.deleteUnusedSince(kind, digests, cutoff, signal);
    const leavesFirst = [...digests].reverse();
    await this.inner.deleteUnusedSince(kind, leavesFirst.slice(0, Math.ceil(digests.length / 2)), cutoff, signal);
    throw new Error("the collector died half way through a batch (deliberately)");
  }
}

/** Marks directories only: after a correct collection it deletes every blob and chunk not used since the cutoff, named or not. */
class IgnoresBlobs implements GarbageCollector {
  readonly backend: string;
  private readonly inner: InProcessCollector;
  constructor(private readonly parts: CollectableParts) {
    this.inner = new InProcessCollector(parts);
    this.backend = `${parts.objects.backend} (broken collector)`;
  }
  async collect(opts: CollectOptions = {}): Promise<CollectReport> {
    const report = await this.inner.collect(opts);
    if (report.dryRun) return report;
    for (const kind of ["blob", "chunk"] as const) {
      const old: Digest[] = [];
      for await (const o of this.parts.objects.listObjects(kind, opts.signal))
        if (o.usedAt < report.cutoff) old.push(o.digest);
      report.deleted[kind] += (
        await this.parts.objects.deleteUnusedSince(kind, old, report.cutoff, opts.signal)
      ).length;
    }
    return report;
  }
  async close(): Promise<void> {}
}

export const brokenCollectors = {
  ignoresGrace: {
    bug: "treats every object as older than the grace period and deletes without re-checking",
    open: (parts: CollectableParts) => new InProcessCollector({ ...parts, objects: new IgnoresGrace(parts.objects) }),
  },
  childrenFirstThenDies: {
    bug: "deletes garbage directories children first and dies half way through",
    open: (parts: CollectableParts) =>
      new InProcessCollector({ ...parts, objects: new ChildrenFirstThenDies(parts.objects) }),
  },
  ignoresBlobs: {
    bug: "marks directories only: deletes every old blob and chunk, reachable or not",
    open: (parts: CollectableParts) => new IgnoresBlobs(parts),
  },
} satisfies Record<string, BrokenCollector>;
