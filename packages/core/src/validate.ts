/**
 * validateDirectory: every rule of spec §2, one ValidationError naming the node
 * and the rule, e.g. `invalid name "a/b" in directories[2]: contains '/'`.
 */
import { describeValue, isBytes } from "./argument-checks.js";
import { DIGEST_LENGTH } from "./digest.js";
import { ValidationError } from "./errors.js";
import {
  type Directory,
  type DirectoryNode,
  type FileNode,
  type SymlinkNode,
  compareBytes,
  displayName,
} from "./model.js";

export const MAX_NAME_LENGTH = 255;
export const MAX_SYMLINK_TARGET_LENGTH = 4095;
const UINT64_MAX = 0xffffffffffffffffn;

const SLASH = 0x2f;
const DOT = 0x2e;

function nameProblem(name: Uint8Array): string | undefined {
  if (name.length === 0) return "is empty";
  if (name.length > MAX_NAME_LENGTH) return `is ${name.length} bytes, longer than ${MAX_NAME_LENGTH}`;
  if (name.length === 1 && name[0] === DOT) return "is '.'";
  if (name.length === 2 && name[0] === DOT && name[1] === DOT) return "is '..'";
  for (let i = 0; i < name.length; i++) {
    const b = name[i];
    if (b === SLASH) return "contains '/'";
    if (b === 0) return "contains a NUL byte";
  }
  return undefined;
}

function targetProblem(target: Uint8Array): string | undefined {
  if (target.length === 0) return "is empty";
  if (target.length > MAX_SYMLINK_TARGET_LENGTH) {
    return `is ${target.length} bytes, longer than ${MAX_SYMLINK_TARGET_LENGTH}`;
  }
  if (target.includes(0)) return "contains a NUL byte";
  return undefined;
}

type ListName = "directories" | "files" | "symlinks";

/**
 * Throws a ValidationError naming the node unless its size is a uint64
 * (0 ≤ size < 2^64), the wire type of `size`. A bigint can be anything: a
 * negative size encoded as a varint is garbage (-1 became a truncated
 * varint, -200 read back as 56), and 2^64 does not fit 64 bits. The encoder
 * calls this too, so such a node is never encoded.
 */
export function checkNodeSize(list: "directories" | "files", index: number, node: DirectoryNode | FileNode): void {
  const size = node.size;
  if (size >= 0n && size <= UINT64_MAX) return;
  const problem = size < 0n ? "is negative" : "does not fit 64 bits";
  throw new ValidationError(
    `invalid size ${size} in ${list}[${index}] ${displayName(node.name)}: ${problem} (a size is a uint64, 0 ≤ size < 2^64)`,
  );
}

/** Each name valid, and the list sorted by name without repeats. */
function checkNames(list: ListName, nodes: { name: Uint8Array }[]): void {
  for (let i = 0; i < nodes.length; i++) {
    const name = nodes[i].name;
    const problem = nameProblem(name);
    if (problem) throw new ValidationError(`invalid name ${displayName(name)} in ${list}[${i}]: ${problem}`);
    if (i > 0) {
      const order = compareBytes(nodes[i - 1].name, name);
      if (order === 0) throw new ValidationError(`duplicate name ${displayName(name)} in ${list}[${i}]`);
      if (order > 0) {
        throw new ValidationError(
          `${list} not sorted: ${list}[${i}] ${displayName(name)} comes after ${displayName(nodes[i - 1].name)}`,
        );
      }
    }
  }
}

/** No name in both sorted lists: a two-pointer walk, linear time. */
function checkDisjoint(
  listA: ListName,
  nodesA: { name: Uint8Array }[],
  listB: ListName,
  nodesB: { name: Uint8Array }[],
): void {
  let i = 0;
  let j = 0;
  while (i < nodesA.length && j < nodesB.length) {
    const order = compareBytes(nodesA[i].name, nodesB[j].name);
    if (order === 0) {
      throw new ValidationError(
        `duplicate name ${displayName(nodesB[j].name)} in ${listB}[${j}]: also in ${listA}[${i}]`,
      );
    }
    if (order < 0) i++;
    else j++;
  }
}

/** What each field of a node must be: the model's types (see model.ts). */
const NODE_FIELDS: Record<ListName, [field: string, isType: (v: unknown) => boolean, type: string][]> = {
  directories: [
    ["name", isBytes, "a Uint8Array"],
    ["digest", isBytes, "a Uint8Array"],
    ["size", (v) => typeof v === "bigint", "a bigint"],
  ],
  files: [
    ["name", isBytes, "a Uint8Array"],
    ["digest", isBytes, "a Uint8Array"],
    ["size", (v) => typeof v === "bigint", "a bigint"],
    ["executable", (v) => typeof v === "boolean", "a boolean"],
  ],
  symlinks: [
    ["name", isBytes, "a Uint8Array"],
    ["target", isBytes, "a Uint8Array"],
  ],
};

/**
 * The slow path of checkDirectoryShape, for a node the fast test doubted:
 * throws naming the first field of the wrong type; returns if there is none
 * (a Uint8Array from another realm, which `instanceof` does not see).
 */
function checkNodeShape(list: ListName, index: number, node: unknown): void {
  if (typeof node !== "object" || node === null)
    throw new ValidationError(`not a Directory: ${list}[${index}] is ${describeValue(node)}, expected a node`);
  for (const [field, isType, type] of NODE_FIELDS[list]) {
    const value = (node as Record<string, unknown>)[field];
    if (!isType(value))
      throw new ValidationError(
        `not a Directory: ${list}[${index}].${field} is ${describeValue(value)}, expected ${type}`,
      );
  }
}

/** The fast test of what DirectoryNode and FileNode share: an object with Uint8Array name and digest, and a bigint size. */
function isSizedNode(n: DirectoryNode | FileNode): boolean {
  return (
    typeof n === "object" &&
    n !== null &&
    n.name instanceof Uint8Array &&
    n.digest instanceof Uint8Array &&
    typeof n.size === "bigint"
  );
}

function checkList(list: ListName, nodes: unknown): asserts nodes is unknown[] {
  if (!Array.isArray(nodes))
    throw new ValidationError(`not a Directory: ${list} is ${describeValue(nodes)}, expected an array of nodes`);
}

/**
 * Throws ValidationError unless `d` has the shape of a Directory: three
 * arrays of nodes whose fields have the model's types. The rules of spec §2
 * check values and assume these types; a caller that is not type-checked
 * could otherwise pass a string name (encoded as NUL bytes: a stored
 * directory every read then reports corrupt) or a number size (encoded as if
 * it were right). Directories decoded from bytes have the shape by
 * construction: only a caller's objects need this (the putter checks them).
 * One `instanceof` or `typeof` per field on the way: an upload checks every
 * directory it is handed.
 */
export function checkDirectoryShape(d: unknown): asserts d is Directory {
  if (typeof d !== "object" || d === null || Array.isArray(d))
    throw new ValidationError(`not a Directory: got ${describeValue(d)} (makeDirectory builds one)`);
  const { directories, files, symlinks } = d as Record<string, unknown>;
  checkList("directories", directories);
  checkList("files", files);
  checkList("symlinks", symlinks);
  for (let i = 0; i < directories.length; i++) {
    const n = directories[i] as DirectoryNode;
    if (!isSizedNode(n)) checkNodeShape("directories", i, n);
  }
  for (let i = 0; i < files.length; i++) {
    const n = files[i] as FileNode;
    if (!isSizedNode(n) || typeof n.executable !== "boolean") checkNodeShape("files", i, n);
  }
  for (let i = 0; i < symlinks.length; i++) {
    const n = symlinks[i] as SymlinkNode;
    if (typeof n !== "object" || n === null || !(n.name instanceof Uint8Array) || !(n.target instanceof Uint8Array))
      checkNodeShape("symlinks", i, n);
  }
}

/** Throws ValidationError if `d` is not a Directory (checkDirectoryShape) or breaks any rule of spec §2. */
export function validateDirectory(d: Directory): void {
  checkDirectoryShape(d);
  validateDirectorySize(d);
}

/**
 * validateDirectory that also returns the directory's size (spec §1), which
 * the last rule computes anyway. Plain calls, no per-call arrays: an upload
 * validates every directory it receives.
 */
export function validateDirectorySize(d: Directory): bigint {
  const { directories, files, symlinks } = d;
  checkNames("directories", directories);
  checkNames("files", files);
  checkNames("symlinks", symlinks);
  // Names must be unique across the three lists too.
  checkDisjoint("directories", directories, "files", files);
  checkDisjoint("directories", directories, "symlinks", symlinks);
  checkDisjoint("files", files, "symlinks", symlinks);
  for (let i = 0; i < directories.length; i++) {
    const n = directories[i];
    if (n.digest.length !== DIGEST_LENGTH) {
      throw new ValidationError(
        `invalid digest in directories[${i}] ${displayName(n.name)}: ${n.digest.length} bytes, expected ${DIGEST_LENGTH}`,
      );
    }
    checkNodeSize("directories", i, n);
  }
  for (let i = 0; i < files.length; i++) {
    const n = files[i];
    if (n.digest.length !== DIGEST_LENGTH) {
      throw new ValidationError(
        `invalid digest in files[${i}] ${displayName(n.name)}: ${n.digest.length} bytes, expected ${DIGEST_LENGTH}`,
      );
    }
    checkNodeSize("files", i, n);
  }
  for (let i = 0; i < symlinks.length; i++) {
    const n = symlinks[i];
    const problem = targetProblem(n.target);
    if (problem) throw new ValidationError(`invalid target in symlinks[${i}] ${displayName(n.name)}: ${problem}`);
  }
  let size = BigInt(files.length + symlinks.length + directories.length);
  for (let i = 0; i < directories.length; i++) size += directories[i].size;
  if (size > UINT64_MAX) throw new ValidationError(`directory size ${size} overflows uint64`);
  return size;
}
