/**
 * Garbage collection (spec §10): what every store's collector offers and
 * reports. How a store finds what is reachable and deletes the rest is its
 * own (in process for memory and LMDB, inside the database for PostgreSQL);
 * the safety rules are the same for all and are written down in spec §10.
 */
import type { Digest } from "../digest.js";
import type { CallOptions } from "../service.js";

/** The kinds of stored object a collection deletes, in the order it deletes them (parents before what they name). */
export const OBJECT_KINDS = ["directory", "blob", "chunk"] as const;
export type ObjectKind = (typeof OBJECT_KINDS)[number];

export interface CollectOptions extends CallOptions {
  /** Roots kept besides every ref: directories (with their closure) or blobs (with their chunks). */
  keep?: readonly Digest[];
  /**
   * Milliseconds: an object last written or used less than this long before
   * the collection started is kept, reachable or not, with everything it
   * names. Protects uploads in progress (spec §10.2). Default one hour.
   */
  graceMs?: number;
  /** Count what would be deleted, delete nothing. */
  dryRun?: boolean;
  /** Called as the collection moves on (phases, counts); for progress on a terminal. */
  onProgress?(progress: CollectProgress): void;
}

export const DEFAULT_GRACE_MS = 60 * 60 * 1000;

export interface CollectProgress {
  phase: "mark" | "sweep";
  /** The kind being swept (sweep only). */
  kind?: ObjectKind;
  /** Objects marked live so far (mark), or deleted so far of this kind (sweep). */
  done: number;
  /** Objects of this kind to delete, where known (sweep). */
  total?: number;
}

/** Counts per kind of stored object. */
export type KindCounts = Record<ObjectKind, number>;

export interface CollectReport {
  /** The store's clock when the collection started (ms since the epoch); objects used since cutoff were kept. */
  startedAt: number;
  /** startedAt minus the grace period. */
  cutoff: number;
  dryRun: boolean;
  /** Roots the collection started from: refs and `keep` digests (young objects not counted). */
  roots: number;
  /** Objects found reachable from the roots or young enough to keep. */
  live: KindCounts;
  /** Objects deleted (or, in a dry run, that would have been). */
  deleted: KindCounts;
  /** Stored bytes of what was deleted (or would have been). */
  deletedBytes: number;
  /** Objects that were garbage when listed but were used again before their turn came, and were kept. */
  spared: number;
  /** Roots that named nothing stored (a `keep` digest unknown to the store; a ref whose tree is gone). */
  missingRoots: Digest[];
}

/** A store's garbage collector. One collection at a time per store is safe; so are several (spec §10.3). */
export interface GarbageCollector {
  /** Names the store in errors and reports. */
  readonly backend: string;
  collect(opts?: CollectOptions): Promise<CollectReport>;
  close(): Promise<void>;
}

export function zeroCounts(): KindCounts {
  return { directory: 0, blob: 0, chunk: 0 };
}

/** The grace period a collection uses: `opts.graceMs`, or one hour; a RangeError unless it is a non-negative number. */
export function graceOf(opts: CollectOptions): number {
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  if (!Number.isFinite(graceMs) || graceMs < 0)
    throw new RangeError(`grace must be a non-negative number of milliseconds, got ${graceMs}`);
  return graceMs;
}

/** The report of a collection that started at `startedAt` (the store's clock), nothing counted yet. */
export function emptyReport(startedAt: number, graceMs: number, opts: CollectOptions): CollectReport {
  return {
    startedAt,
    cutoff: startedAt - graceMs,
    dryRun: opts.dryRun === true,
    roots: 0,
    live: zeroCounts(),
    deleted: zeroCounts(),
    deletedBytes: 0,
    spared: 0,
    missingRoots: [],
  };
}
