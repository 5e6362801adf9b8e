/**
 * The closures of stored directories, walked synchronously inside one
 * store transaction: what a partial upload's commit marks as used (spec
 * §3.6, §10.2) atomically with the check that each referred-to child is
 * still stored. For in-process stores (memory, LMDB), whose reads inside a
 * transaction are synchronous.
 */
import { decodeDirectory } from "./canonical.js";
import { Digest, digestKey } from "./digest.js";
import { ClosureError, CorruptionError } from "./errors.js";

/**
 * Visits every directory reachable from `roots` (the roots included), each
 * once, reading stored bytes with `read`. A digest that is not stored ends
 * the walk with ClosureError naming it (for a root: the upload's child the
 * store lacks; below one: a store that lost part of a closure). The bytes
 * are not re-hashed: the walk only needs the child digests to mark them.
 */
export function visitStoredClosures(
  roots: readonly Digest[],
  read: (digest: Uint8Array) => Uint8Array | undefined,
  visit: (digest: Uint8Array, bytes: Uint8Array) => void,
): void {
  const seen = new Set<string>();
  const stack: { digest: Uint8Array; root: Digest }[] = [];
  for (const root of roots) {
    const key = digestKey(root.bytes);
    if (seen.has(key)) continue;
    seen.add(key);
    stack.push({ digest: root.bytes, root });
  }
  while (stack.length > 0) {
    const { digest, root } = stack.pop()!;
    const bytes = read(digest);
    if (bytes === undefined) {
      const d = Digest.fromBytes(digest);
      throw new ClosureError(
        d.equals(root)
          ? `partial upload refers to directory ${root.hex}, which the store does not hold (any more)`
          : `partial upload refers to directory ${root.hex}, whose closure the store lacks: directory ${d.hex} is missing`,
      );
    }
    visit(digest, bytes);
    let children;
    try {
      children = decodeDirectory(bytes).directories;
    } catch (e) {
      throw new CorruptionError(`directory ${Digest.fromBytes(digest).hex} is corrupt: ${(e as Error).message}`);
    }
    for (const child of children) {
      const key = digestKey(child.digest);
      if (seen.has(key)) continue;
      seen.add(key);
      // A copy: `read` may hand out a view that its next call overwrites.
      stack.push({ digest: child.digest.slice(), root });
    }
  }
}
