/**
 * Deterministic tree generators for the conformance suite and benchmarks.
 * Every generator returns its directories leaves to root (each directory's
 * children before it, the root last): the order an upload sends them in.
 */
import {
  type Directory,
  type DirectoryNode,
  type FileNode,
  type SymlinkNode,
  Digest,
  compareBytes,
  directorySize,
  encodeDirectory,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
} from "@castore-ts/core";

export interface GeneratedTree {
  /** Every directory of the tree once, leaves to root (the root last). */
  directories: Directory[];
  /** `digests[i]` is the digest of `directories[i]`. */
  digests: Digest[];
  /** The root's digest (the last of `digests`). */
  root: Digest;
  /** The root's size (spec §1), for a DirectoryNode that refers to it. */
  rootSize: bigint;
  /** Total canonical encoded bytes of all directories. */
  encodedBytes: number;
}

export interface GenerateTreeOptions {
  /** How many distinct directories (at least 1). */
  directories: number;
  /** PRNG seed; the same options always give the same tree. Default 1. */
  seed?: number;
  /** Most files per directory; each directory has 1..maxFiles (so all directories differ). Default 4. */
  maxFiles?: number;
  /** Chance that a directory also has symlinks (1–2 of them). Default 0.2. */
  symlinkChance?: number;
}

/** mulberry32: a small, fast, seedable 32-bit PRNG. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(random: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const v = (random() * 4294967296) >>> 0;
    out[i] = v & 0xff;
    if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = v >>> 24;
  }
  return out;
}

const byName = (a: { name: Uint8Array }, b: { name: Uint8Array }) => compareBytes(a.name, b.name);

class TreeBuilder {
  readonly directories: Directory[] = [];
  readonly digests: Digest[] = [];
  encodedBytes = 0;

  /** Encodes, hashes and records a directory; returns its digest and size. */
  add(directory: Directory): { digest: Digest; size: bigint } {
    const bytes = encodeDirectory(directory);
    const digest = Digest.of(bytes);
    this.directories.push(directory);
    this.digests.push(digest);
    this.encodedBytes += bytes.length;
    return { digest, size: directorySize(directory) };
  }

  finish(): GeneratedTree {
    const last = this.directories.length - 1;
    return {
      directories: this.directories,
      digests: this.digests,
      root: this.digests[last],
      rootSize: directorySize(this.directories[last]),
      encodedBytes: this.encodedBytes,
    };
  }
}

/**
 * A random tree of `directories` distinct directories with mixed fan-out and
 * depth: most directories attach to a random earlier one (shallow, bushy),
 * some continue the directory just made (deep chains), some cluster under
 * recent ones, some hang off the first few (wide near the root). Each
 * directory has 1..maxFiles files (random digests and sizes, some
 * executable) and sometimes symlinks.
 */
export function generateTree(opts: GenerateTreeOptions): GeneratedTree {
  const n = opts.directories;
  if (!Number.isInteger(n) || n < 1)
    throw new RangeError(`generateTree: directories must be a positive integer, got ${n}`);
  const random = seededRandom(opts.seed ?? 1);
  const maxFiles = opts.maxFiles ?? 4;
  const symlinkChance = opts.symlinkChance ?? 0.2;
  const int = (below: number) => Math.floor(random() * below);

  // Parent of each directory; parent[i] < i, so index order is root to leaves.
  const children: number[][] = Array.from({ length: n }, () => []);
  for (let i = 1; i < n; i++) {
    const r = random();
    let parent: number;
    if (r < 0.25)
      parent = i - 1; // go deeper
    else if (r < 0.45)
      parent = Math.max(0, i - 1 - int(64)); // cluster under a recent directory
    else if (r < 0.55)
      parent = int(Math.min(i, 16)); // wide near the root
    else parent = int(i); // anywhere
    children[parent].push(i);
  }

  // File names are shared by every directory (names are never mutated), in bytewise order,
  // so a directory's files come out sorted: f0.dat, f1.dat, f10.dat, f11.dat, …, f2.dat.
  const fileNames = Array.from({ length: maxFiles }, (_, k) => ({
    k,
    name: new TextEncoder().encode(`f${k}.dat`),
  })).sort((a, b) => compareBytes(a.name, b.name));

  const builder = new TreeBuilder();
  const nodes: ({ digest: Digest; size: bigint } | undefined)[] = new Array(n);
  for (let i = n - 1; i >= 0; i--) {
    const dirs: DirectoryNode[] = children[i].map((c, k) =>
      makeDirectoryNode(`d${k}`, nodes[c]!.digest, nodes[c]!.size),
    );
    const files: FileNode[] = [];
    const fileCount = 1 + int(maxFiles);
    for (const { k, name } of fileNames) {
      if (k < fileCount) files.push(makeFileNode(name, randomBytes(random, 32), int(1 << 30), random() < 0.1));
    }
    const symlinks: SymlinkNode[] = [];
    if (random() < symlinkChance) {
      const count = 1 + int(2);
      for (let k = 0; k < count; k++)
        symlinks.push(makeSymlinkNode(`l${k}`, k === 0 ? "../f0.dat" : `/nix/store/x${i}`));
    }
    dirs.sort(byName);
    nodes[i] = builder.add(makeDirectory({ directories: dirs, files, symlinks }));
    for (const c of children[i]) nodes[c] = undefined; // a directory has one parent: drop what is no longer needed
  }
  return builder.finish();
}

/**
 * A chain of `n` directories: the empty directory, then n-1 directories each
 * holding the previous one as `name` (default "d"). The deepest tree of that
 * many directories; chains of other names share no directory but the empty
 * one.
 */
export function deepChain(n: number, name = "d"): GeneratedTree {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`deepChain: n must be a positive integer, got ${n}`);
  const builder = new TreeBuilder();
  let previous = builder.add(makeDirectory());
  for (let i = 1; i < n; i++) {
    previous = builder.add(makeDirectory({ directories: [makeDirectoryNode(name, previous.digest, previous.size)] }));
  }
  return builder.finish();
}

/**
 * One directory with `entries` entries (every fifth a directory → the empty
 * directory, every fifth a symlink, the rest files), plus that empty
 * directory: two directories, leaves to root. 50 000 entries encode to about
 * 2.5 MB.
 */
export function wideDirectory(entries: number, seed = 1): GeneratedTree {
  if (!Number.isInteger(entries) || entries < 0)
    throw new RangeError(`wideDirectory: entries must be a non-negative integer, got ${entries}`);
  const random = seededRandom(seed);
  const builder = new TreeBuilder();
  const empty = builder.add(makeDirectory());
  const width = String(Math.max(0, entries - 1)).length;
  const dirs: DirectoryNode[] = [];
  const files: FileNode[] = [];
  const symlinks: SymlinkNode[] = [];
  // Zero-padded names sort bytewise in index order, so each list is sorted as built.
  for (let i = 0; i < entries; i++) {
    const name = `e${String(i).padStart(width, "0")}`;
    switch (i % 5) {
      case 0:
        dirs.push(makeDirectoryNode(name, empty.digest, empty.size));
        break;
      case 4:
        symlinks.push(makeSymlinkNode(name, `../target/${i}`));
        break;
      default:
        files.push(makeFileNode(name, randomBytes(random, 32), Math.floor(random() * 1e9), i % 7 === 0));
    }
  }
  builder.add(makeDirectory({ directories: dirs, files, symlinks }));
  return builder.finish();
}

/** A directory with its digest: the unit `overlappingTree` builds from. */
export interface DigestedDirectory {
  directory: Directory;
  digest: Digest;
}

/**
 * A directory tagged `tag` (one file named after it) holding `children`. With
 * no children it is a leaf; leaves with distinct tags are distinct.
 */
export function taggedDirectory(tag: string, children: DigestedDirectory[] = []): DigestedDirectory {
  const nodes = children
    .map((c, i) => makeDirectoryNode(`c${i}-${c.digest.hex.slice(0, 6)}`, c.digest, directorySize(c.directory)))
    .sort((a, b) => compareBytes(a.name, b.name));
  const directory = makeDirectory({
    directories: nodes,
    files: [makeFileNode(`f-${tag}`, new Uint8Array(32).fill(3), tag.length)],
  });
  return { directory, digest: Digest.of(encodeDirectory(directory)) };
}

export interface OverlappingTree {
  /** The upload, leaves to root: the shared leaves it uses, its own directories, the root. */
  leavesToRoot: Directory[];
  root: Digest;
  /** How many distinct directories the closure of `root` holds. */
  closureSize: number;
}

/**
 * An upload that overlaps others: `unique` directories of its own (tagged
 * from `tag`), each holding two of the `shared` leaves, under one root.
 * Concurrent uploads built from the same `shared` leaves store some
 * directories twice, which a backend must treat as one.
 */
export function overlappingTree(tag: string, shared: DigestedDirectory[], unique: number): OverlappingTree {
  const used = new Set<number>();
  const own: DigestedDirectory[] = [];
  for (let i = 0; i < unique; i++) {
    const a = (i * 7) % shared.length;
    const b = (i * 13 + 1) % shared.length;
    used.add(a).add(b);
    own.push(taggedDirectory(`${tag}-${i}`, [shared[a], shared[b]]));
  }
  const root = taggedDirectory(`${tag}-root`, own);
  const leavesToRoot = [...[...used].map((j) => shared[j].directory), ...own.map((m) => m.directory), root.directory];
  return { leavesToRoot, root: root.digest, closureSize: used.size + unique + 1 };
}
