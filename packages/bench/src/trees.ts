/**
 * The trees every backend is measured on: a generated tree of mixed fan-out
 * and depth, one very wide directory, a deep chain, and a real directory tree
 * of this machine imported by the CLI's importer. Each is a list of
 * directories leaves to root (an upload order), distinct, with its root.
 */
import { generateTree, type GeneratedTree, deepChain, wideDirectory } from "@castore-ts/conformance";
import { type Digest, type Directory, directoryDigest, encodeDirectory, openDirectoryService } from "@castore-ts/core";
import { importTree } from "@castore-ts/cli";
import "@castore-ts/backend-memory";

export interface BenchTree {
  /** Short key used in result names, e.g. "100k-tree". */
  key: string;
  /** What it is, for notes. */
  description: string;
  /** Distinct directories, leaves to root (the root last). */
  directories: Directory[];
  root: Digest;
  /** The rate unit of this tree: directories/s, or entries/s for the wide directory. */
  unit: "directories/s" | "entries/s";
  /** How many units one pass over the tree is (directories, or entries). */
  units: number;
  encodedBytes: number;
}

const label = (n: number) => (n % 1000 === 0 ? `${n / 1000}k` : String(n));

export function generatedTree(directories: number, seed: number): BenchTree {
  const tree = generateTree({ directories, seed });
  return fromGenerated(
    tree,
    `${label(directories)}-tree`,
    `generateTree({ directories: ${directories}, seed: ${seed} }), ${mib(tree.encodedBytes)} encoded`,
    "directories/s",
    directories,
  );
}

export function wideTree(entries: number): BenchTree {
  const tree = wideDirectory(entries);
  return fromGenerated(
    tree,
    `wide-${label(entries)}`,
    `wideDirectory(${entries}): one directory of ${entries} entries (${mib(tree.encodedBytes)} encoded) plus the empty directory; rates in entries/s`,
    "entries/s",
    entries,
  );
}

/** A chain `depth` directories deep; `name` (default "d") names each link, so chains of other names share no directory but the empty one. */
export function deepTree(depth: number, name = "d"): BenchTree {
  const tree = deepChain(depth, name);
  return fromGenerated(
    tree,
    name === "d" ? `deep-${depth}` : `deep-${depth}-${name}`,
    `deepChain(${depth}${name === "d" ? "" : `, "${name}"`}): a chain ${depth} directories deep`,
    "directories/s",
    depth,
  );
}

function fromGenerated(
  tree: GeneratedTree,
  key: string,
  description: string,
  unit: BenchTree["unit"],
  units: number,
): BenchTree {
  return {
    key,
    description,
    directories: tree.directories,
    root: tree.root,
    unit,
    units,
    encodedBytes: tree.encodedBytes,
  };
}

/**
 * A real tree: `path` imported with the CLI's `importTree` into a memory
 * store (files are read and hashed, as `castore import` does), then read
 * back and put in upload order. When its closure has more than
 * `maxDirectories`, the largest subtree within that cap is used instead
 * (descending into the child with the most directories).
 */
export async function importedTree(path: string, maxDirectories: number): Promise<BenchTree> {
  const service = await openDirectoryService("memory://");
  try {
    const started = performance.now();
    const { digest, progress } = await importTree(service, path);
    const importSeconds = (performance.now() - started) / 1000;
    const byHex = new Map<string, Directory>();
    for await (const d of service.getRecursive(digest)) byHex.set(digestHexOf(d), d);
    let rootHex = digest.hex;
    let subPath = "";
    while (closureSize(byHex, rootHex) > maxDirectories) {
      const parent = byHex.get(rootHex)!;
      let best: { hex: string; name: string; size: number } | undefined;
      for (const child of parent.directories) {
        const hex = Buffer.from(child.digest).toString("hex");
        const size = closureSize(byHex, hex);
        if (size <= maxDirectories && (!best || size > best.size))
          best = { hex, name: Buffer.from(child.name).toString("utf8"), size };
      }
      if (!best) {
        // Every child is still too big: go into the biggest and try again.
        const biggest = parent.directories
          .map((c) => ({ hex: Buffer.from(c.digest).toString("hex"), name: Buffer.from(c.name).toString("utf8") }))
          .map((c) => ({ ...c, size: closureSize(byHex, c.hex) }))
          .sort((a, b) => b.size - a.size)[0];
        if (!biggest) break;
        best = biggest;
      }
      rootHex = best.hex;
      subPath += `/${best.name}`;
    }
    const directories = leavesToRoot(byHex, rootHex);
    const root = directories.length ? directoryDigest(directories[directories.length - 1]) : digest;
    const encodedBytes = directories.reduce((n, d) => n + encodeDirectory(d).length, 0);
    const shown = `${path}${subPath}`;
    const capped = subPath
      ? ` (the largest subtree of ${path} within ${maxDirectories} directories; ${path} has ${byHex.size})`
      : "";
    return {
      key: path.replace(/^\/+/, "").replace(/[^A-Za-z0-9]+/g, "-") || "root",
      description:
        `${shown}${capped}: ${directories.length} distinct directories, ${mib(encodedBytes)} encoded; ` +
        `imported with importTree into memory:// first (${progress.files} files, ${mib(progress.bytes)} hashed in ${importSeconds.toFixed(1)} s)`,
      directories,
      root,
      unit: "directories/s",
      units: directories.length,
      encodedBytes,
    };
  } finally {
    await service.close();
  }
}

/** The closure of `rootHex` in upload order: every directory after all its child directories, each once. */
export function leavesToRoot(byHex: Map<string, Directory>, rootHex: string): Directory[] {
  const out: Directory[] = [];
  const done = new Set<string>();
  // Iterative post-order: a frame is a directory and the index of its next child.
  const stack: { hex: string; next: number }[] = [{ hex: rootHex, next: 0 }];
  done.add(rootHex);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const directory = byHex.get(top.hex);
    if (!directory) throw new Error(`directory ${top.hex} is missing from the imported closure`);
    if (top.next < directory.directories.length) {
      const hex = Buffer.from(directory.directories[top.next++].digest).toString("hex");
      if (!done.has(hex)) {
        done.add(hex);
        stack.push({ hex, next: 0 });
      }
    } else {
      out.push(directory);
      stack.pop();
    }
  }
  return out;
}

function closureSize(byHex: Map<string, Directory>, rootHex: string): number {
  const seen = new Set([rootHex]);
  const queue = [rootHex];
  while (queue.length) {
    const d = byHex.get(queue.pop()!)!;
    for (const child of d.directories) {
      const hex = Buffer.from(child.digest).toString("hex");
      if (!seen.has(hex)) {
        seen.add(hex);
        queue.push(hex);
      }
    }
  }
  return seen.size;
}

function digestHexOf(d: Directory): string {
  return directoryDigest(d).hex;
}

function mib(bytes: number): string {
  return bytes >= 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}
