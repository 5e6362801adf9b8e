/**
 * Test trees: a random DAG with shared subtrees (generateTree makes trees
 * only), uploaded leaves to root, and the closure of any of its directories.
 */
import { ClosureValidator, type Digest, type Directory } from "@castore-ts/core";
import { type DigestedDirectory, seededRandom, taggedDirectory } from "@castore-ts/conformance";

export interface TestDag {
  /** Leaves to root, the root last. */
  directories: Directory[];
  digests: Digest[];
  root: Digest;
  /** The closure of each directory (by hex), itself included. */
  closureOf(hex: string): Set<string>;
}

/**
 * `n` directories; each refers to up to 3 random earlier ones (so subtrees are
 * shared), and a root refers to every directory no other one refers to.
 */
export function randomDag(n: number, seed = 1): TestDag {
  const random = seededRandom(seed);
  const nodes: DigestedDirectory[] = [];
  const children = new Map<string, string[]>();
  const referenced = new Set<number>();
  // Each directory has a file named after its tag, so every one is distinct.
  const add = (kids: DigestedDirectory[], tag: string) => {
    const made = taggedDirectory(tag, kids);
    nodes.push(made);
    children.set(
      made.digest.hex,
      kids.map((c) => c.digest.hex),
    );
    return made.digest;
  };
  for (let i = 0; i < n; i++) {
    const picks = new Set<number>();
    const want = i === 0 ? 0 : Math.floor(random() * 4);
    for (let k = 0; k < want; k++) picks.add(Math.floor(random() * i));
    for (const j of picks) referenced.add(j);
    add(
      [...picks].map((j) => nodes[j]),
      String(i),
    );
  }
  const tops = nodes.filter((_, i) => !referenced.has(i));
  const root = add(tops, "root");
  const directories = nodes.map((d) => d.directory);
  const digests = nodes.map((d) => d.digest);
  const memo = new Map<string, Set<string>>();
  const closureOf = (hex: string): Set<string> => {
    let set = memo.get(hex);
    if (!set) {
      set = new Set([hex]);
      for (const c of children.get(hex) ?? []) for (const x of closureOf(c)) set.add(x);
      memo.set(hex, set);
    }
    return set;
  };
  return { directories, digests, root, closureOf };
}

/** The validated closure of directories given leaves to root (what a putter hands a backend). */
export function validated(directories: Directory[]) {
  const v = new ClosureValidator();
  for (const d of directories) v.add(d);
  return v.finish();
}
