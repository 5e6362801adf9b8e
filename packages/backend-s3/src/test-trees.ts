/**
 * Test trees: a random DAG with shared subtrees (generateTree makes trees
 * only), uploaded leaves to root, and the closure of any of its directories.
 */
import {
  ClosureValidator,
  Digest,
  type Directory,
  type DirectoryNode,
  compareBytes,
  directorySize,
  encodeDirectory,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
} from "@castore/core";
import { seededRandom } from "@castore/conformance";

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
  const directories: Directory[] = [];
  const digests: Digest[] = [];
  const children = new Map<string, string[]>();
  const referenced = new Set<number>();
  const add = (dirs: DirectoryNode[], tag: string) => {
    dirs.sort((a, b) => compareBytes(a.name, b.name));
    const d = makeDirectory({ directories: dirs, files: [makeFileNode(`f-${tag}`, new Uint8Array(32).fill(7), 1)] });
    const digest = Digest.of(encodeDirectory(d));
    directories.push(d);
    digests.push(digest);
    children.set(digest.hex, dirs.map((c) => Buffer.from(c.digest).toString("hex")));
    return digest;
  };
  for (let i = 0; i < n; i++) {
    const picks = new Set<number>();
    const want = i === 0 ? 0 : Math.floor(random() * 4);
    for (let k = 0; k < want; k++) picks.add(Math.floor(random() * i));
    const dirs = [...picks].map((j, k) => {
      referenced.add(j);
      return makeDirectoryNode(`d${k}`, digests[j], directorySize(directories[j]));
    });
    add(dirs, String(i));
  }
  const tops = directories.map((_, i) => i).filter((i) => !referenced.has(i));
  const root = add(tops.map((j, k) => makeDirectoryNode(`top${k}`, digests[j], directorySize(directories[j]))), "root");
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
