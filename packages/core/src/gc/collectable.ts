/**
 * What a store implements so that core's InProcessCollector can collect it
 * (spec §10): every stored object carries the time it was last written or
 * used, and deleting is conditional on that time, atomically per object.
 */
import type { Digest } from "../digest.js";
import type { ObjectKind } from "./collector.js";

export interface StoredObject {
  digest: Digest;
  /** Stored bytes (a directory's canonical encoding, a chunk's bytes, a manifest's). */
  size: number;
  /** When it was last written or used (ms since the epoch, on the store's clock). */
  usedAt: number;
}

export interface CollectableStore {
  readonly backend: string;
  /**
   * A collection starts: counts it in where the store's ref sets see it
   * (fenced-set.ts), and answers the store's clock (ms since the epoch, what
   * usedAt is measured by), strictly after every usedAt committed before.
   */
  startCollection(): Promise<number>;
  /** Every stored object of a kind. A listing may or may not see changes made while it runs. */
  listObjects(kind: ObjectKind, signal?: AbortSignal): AsyncIterable<StoredObject>;
  /**
   * Deletes each listed object of this kind whose usedAt is still before
   * `cutoff` (one used since is spared), in the order given or all at once:
   * never a later one before an earlier one. Resolves to those deleted.
   */
  deleteUnusedSince(
    kind: ObjectKind,
    digests: readonly Digest[],
    cutoff: number,
    signal?: AbortSignal,
  ): Promise<StoredObject[]>;
  /**
   * Marks objects as used now, and says which are stored. A blob's chunks are
   * marked with it, atomically or before it. Stores call this themselves
   * wherever a write relies on what is already there (spec §10.2).
   */
  touch(kind: ObjectKind, digests: readonly Digest[], signal?: AbortSignal): Promise<boolean[]>;
}
