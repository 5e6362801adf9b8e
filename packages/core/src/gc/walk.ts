/**
 * The one breadth-first walk over stored directories that collection and
 * protectClosure share: level by level, in batches of getMany, each
 * directory read once, re-hashed and decoded (a corrupt one throws
 * CorruptionError: its children cannot be known).
 */
import { decodeStoredDirectorySized } from "../closure.js";
import { Digest, digestKey } from "../digest.js";
import { throwIfAborted } from "../errors.js";
import type { Directory } from "../model.js";
import type { DirectoryStore } from "../store-service.js";

/** Digests per getMany. */
const BATCH = 512;

export interface WalkHooks {
  /** Every directory read, with its size (spec §1). */
  visit(digest: Digest, directory: Directory, size: bigint): void;
  /** A digest the walk reached that is not stored. */
  missing(digest: Digest): void;
  /** After each batch, with the directories seen so far. */
  progress?(seen: number): void;
}

/**
 * Walks from `roots` through child directories, skipping digests whose key
 * is already in `seen` (which it fills: pass a set shared with earlier walks
 * to visit each directory once across them).
 */
export async function walkDirectories(
  store: DirectoryStore,
  roots: readonly Digest[],
  seen: Set<string>,
  hooks: WalkHooks,
  signal?: AbortSignal,
): Promise<void> {
  let level: Digest[] = [];
  const reach = (d: Digest, into: Digest[]) => {
    const key = digestKey(d.bytes);
    if (seen.has(key)) return;
    seen.add(key);
    into.push(d);
  };
  for (const root of roots) reach(root, level);
  while (level.length > 0) {
    const next: Digest[] = [];
    for (let i = 0; i < level.length; i += BATCH) {
      throwIfAborted(signal);
      const batch = level.slice(i, i + BATCH);
      const stored = await store.getMany(batch, signal);
      batch.forEach((digest, j) => {
        const bytes = stored[j];
        if (bytes === undefined) return hooks.missing(digest);
        const { directory, size } = decodeStoredDirectorySized(digest, bytes);
        hooks.visit(digest, directory, size);
        for (const child of directory.directories) reach(Digest.fromBytes(child.digest), next);
      });
      hooks.progress?.(seen.size);
    }
    level = next;
  }
}
