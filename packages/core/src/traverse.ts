/**
 * traverseTo (spec §4): walks a path from a node, one component at a time,
 * matching names by exact bytes.
 */
import { Digest } from "./digest.js";
import { CorruptionError } from "./errors.js";
import { type Node, type NameLike, compareBytes, displayName, toBytes } from "./model.js";
import type { CallOptions, DirectoryService } from "./service.js";

const SLASH = 0x2f;

/** Splits a path into its non-empty components; leading, trailing and repeated slashes are ignored. */
export function pathComponents(path: NameLike): Uint8Array[] {
  const bytes = toBytes(path);
  const components: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === SLASH) {
      if (i > start) components.push(bytes.subarray(start, i));
      start = i + 1;
    }
  }
  return components;
}

/** Binary search in a list sorted by name. */
function findByName<T extends { name: Uint8Array }>(nodes: T[], name: Uint8Array): T | undefined {
  let lo = 0;
  let hi = nodes.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const order = compareBytes(nodes[mid].name, name);
    if (order === 0) return nodes[mid];
    if (order < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return undefined;
}

/**
 * The node at `path` below `node`, or undefined when nothing is there. A
 * directory node whose directory is not stored means the store broke its
 * invariant: that is a CorruptionError, not undefined.
 */
export async function traverseTo(
  service: DirectoryService,
  node: Node,
  path: NameLike,
  opts?: CallOptions,
): Promise<Node | undefined> {
  let current = node;
  for (const component of pathComponents(path)) {
    if (current.kind !== "directory") return undefined;
    const digest = Digest.fromBytes(current.node.digest);
    const directory = await service.get(digest, opts);
    if (!directory) {
      throw new CorruptionError(
        `directory ${digest} (${displayName(current.node.name)}) is not stored, though a stored directory refers to it`,
      );
    }
    const dir = findByName(directory.directories, component);
    if (dir) {
      current = { kind: "directory", node: dir };
      continue;
    }
    const file = findByName(directory.files, component);
    if (file) {
      current = { kind: "file", node: file };
      continue;
    }
    const symlink = findByName(directory.symlinks, component);
    if (symlink) {
      current = { kind: "symlink", node: symlink };
      continue;
    }
    return undefined;
  }
  return current;
}
