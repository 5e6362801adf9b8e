/**
 * Which directories of a tree a store lacks, asked top down (spec §3.5): the
 * root first, then the children of each missing directory, one `has` per
 * level. A stored directory has its whole closure (§3.1), so nothing below a
 * stored one is asked about: re-sending a tree with one changed file asks
 * about the changed path and its siblings, not about every directory.
 */
import { Digest, digestKey } from "./digest.js";
import { type CallOptions, type DirectoryService, hasDirectories } from "./service.js";

/** The hex digests of the directories below and including `root` that `to` lacks. */
export async function missingTopDown(
  to: Pick<DirectoryService, "get" | "has">,
  root: Digest,
  childrenOf: (digest: Digest) => readonly Uint8Array[],
  opts: CallOptions & { onLevel?(asked: number, missing: number): void } = {},
): Promise<Set<string>> {
  const missing = new Set<string>();
  const asked = new Set<string>([digestKey(root.bytes)]);
  let level: Digest[] = [root];
  while (level.length > 0) {
    const present = await hasDirectories(to, level, opts);
    const next: Digest[] = [];
    let missingHere = 0;
    level.forEach((digest, i) => {
      if (present[i]) return;
      missingHere++;
      missing.add(digest.hex);
      for (const child of childrenOf(digest)) {
        const key = digestKey(child);
        if (asked.has(key)) continue;
        asked.add(key);
        next.push(Digest.fromBytes(child));
      }
    });
    opts.onLevel?.(level.length, missingHere);
    level = next;
  }
  return missing;
}
