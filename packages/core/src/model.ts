/**
 * The castore data model (spec §1): the generated protobuf-es message types,
 * and small constructors that take strings or bytes for names.
 */
import type { Directory, DirectoryNode, FileNode, SymlinkNode } from "@castore-ts/proto";
import { Digest } from "./digest.js";

export type { Directory, DirectoryNode, FileNode, SymlinkNode };

/** Names and targets are bytes; a string argument is taken as its UTF-8 encoding. */
export type NameLike = Uint8Array | string;

const textEncoder = new TextEncoder();

export function toBytes(name: NameLike): Uint8Array {
  return typeof name === "string" ? textEncoder.encode(name) : name;
}

export function makeDirectory(
  init: {
    directories?: DirectoryNode[];
    files?: FileNode[];
    symlinks?: SymlinkNode[];
  } = {},
): Directory {
  return {
    $typeName: "tvix.castore.v1.Directory",
    directories: init.directories ?? [],
    files: init.files ?? [],
    symlinks: init.symlinks ?? [],
  };
}

export function makeDirectoryNode(name: NameLike, digest: Digest | Uint8Array, size: bigint | number): DirectoryNode {
  return {
    $typeName: "tvix.castore.v1.DirectoryNode",
    name: toBytes(name),
    digest: digest instanceof Digest ? digest.bytes : digest,
    size: BigInt(size),
  };
}

export function makeFileNode(
  name: NameLike,
  digest: Digest | Uint8Array,
  size: bigint | number,
  executable = false,
): FileNode {
  return {
    $typeName: "tvix.castore.v1.FileNode",
    name: toBytes(name),
    digest: digest instanceof Digest ? digest.bytes : digest,
    size: BigInt(size),
    executable,
  };
}

export function makeSymlinkNode(name: NameLike, target: NameLike): SymlinkNode {
  return { $typeName: "tvix.castore.v1.SymlinkNode", name: toBytes(name), target: toBytes(target) };
}

/** A node of any kind, as returned by traversal. */
export type Node =
  | { kind: "directory"; node: DirectoryNode }
  | { kind: "file"; node: FileNode }
  | { kind: "symlink"; node: SymlinkNode };

/** The count of all nodes below a directory (spec §1); may exceed 2^64-1 (validation rejects that). */
export function directorySize(d: Directory): bigint {
  let size = BigInt(d.files.length + d.symlinks.length + d.directories.length);
  for (const child of d.directories) size += child.size;
  return size;
}

/** Bytewise comparison of names (memcmp order). A JS loop: names are short, and a native call costs more. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A printable form of a name: UTF-8 when it is valid UTF-8, else with \xNN escapes. */
export function displayName(name: Uint8Array): string {
  const buf = Buffer.from(name.buffer, name.byteOffset, name.byteLength);
  const text = buf.toString("utf8");
  if (Buffer.byteLength(text) === buf.length && !text.includes("\uFFFD")) {
    return JSON.stringify(text);
  }
  let out = "";
  for (const byte of buf) {
    out +=
      byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c
        ? String.fromCharCode(byte)
        : `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return `"${out}"`;
}
