/** Text and JSON renderings of directories for `ls` and `get`. */
import { Digest, type Directory, type Node } from "@castore-ts/core";
import { base64, escapeName } from "./names.js";

/** One `ls -l`-like line: mode, size, digest, name (and `-> target` for symlinks). */
export function formatNode(node: Node): string {
  switch (node.kind) {
    case "directory":
      return `drwxr-xr-x ${String(node.node.size).padStart(12)} ${Digest.fromBytes(node.node.digest).hex} ${escapeName(node.node.name)}/`;
    case "file":
      return `${node.node.executable ? "-r-xr-xr-x" : "-r--r--r--"} ${String(node.node.size).padStart(12)} ${Digest.fromBytes(node.node.digest).hex} ${escapeName(node.node.name)}`;
    case "symlink":
      return `lrwxrwxrwx ${String(node.node.target.length).padStart(12)} ${"-".repeat(64)} ${escapeName(node.node.name)} -> ${escapeName(node.node.target)}`;
  }
}

/** The nodes of a directory in name order across the three lists, as `ls` shows them. */
export function directoryNodes(d: Directory): Node[] {
  const nodes: Node[] = [
    ...d.directories.map((node) => ({ kind: "directory" as const, node })),
    ...d.files.map((node) => ({ kind: "file" as const, node })),
    ...d.symlinks.map((node) => ({ kind: "symlink" as const, node })),
  ];
  return nodes.sort((a, b) => Buffer.compare(a.node.name, b.node.name));
}

/** uint64 as a JSON number when exact, else as a decimal string. */
function jsonUint64(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

/** The JSON form of a directory (one line per directory in `castore get --json`). */
export function directoryJson(digest: Digest, d: Directory): unknown {
  return {
    digest: digest.hex,
    directories: d.directories.map((n) => ({
      name: escapeName(n.name),
      name_b64: base64(n.name),
      digest: Digest.fromBytes(n.digest).hex,
      size: jsonUint64(n.size),
    })),
    files: d.files.map((n) => ({
      name: escapeName(n.name),
      name_b64: base64(n.name),
      digest: Digest.fromBytes(n.digest).hex,
      size: jsonUint64(n.size),
      executable: n.executable,
    })),
    symlinks: d.symlinks.map((n) => ({
      name: escapeName(n.name),
      name_b64: base64(n.name),
      target: escapeName(n.target),
      target_b64: base64(n.target),
    })),
  };
}
