/**
 * verify: an fsck for any store. Walks the given roots breadth first (or,
 * where the backend can list, every stored directory), re-reads every
 * directory (the service re-hashes and re-validates it), checks that every
 * child directory is present with the declared size, and reports each
 * problem with its digest and a path from the root.
 */
import pLimit from "p-limit";
import {
  type BlobService,
  Digest,
  isCastoreError,
  hexOf,
  type DirectoryService,
  type InvalidStoredKey,
  type SizeCheck,
  type SizeRange,
  declaredSizeAccepted,
  sizeRangeOf,
  type Directory,
} from "@castore-ts/core";
import { escapeName } from "./names.js";

/**
 * invalid-key: a stored key that is not a digest (whole-store mode); `digest` then holds the key as stored.
 * blob-*: a file's contents (with `blobs`): not stored, stored with another size than its node declares,
 * or (with `rehash`) stored bytes that do not hash to the digest; `digest` is then the blob's.
 */
export type ProblemKind =
  | "missing"
  | "corrupt"
  | "size-mismatch"
  | "invalid-key"
  | "error"
  | "blob-missing"
  | "blob-size-mismatch"
  | "blob-corrupt";

export interface Problem {
  kind: ProblemKind;
  digest: string;
  /** Path from the root ("" for the root itself), or undefined in whole-store mode. */
  path?: string;
  message: string;
}

export interface VerifyProgress {
  directories: number;
  problems: number;
  /** With `blobs`: distinct blobs checked, and (with `rehash`) the bytes read. */
  blobs?: number;
  blobBytes?: number;
}

export interface VerifyOptions {
  sizeCheck?: SizeCheck;
  /** Directories read at once. */
  concurrency?: number;
  onProblem?(p: Problem): void;
  onProgress?(p: VerifyProgress): void;
  signal?: AbortSignal;
  /** Also check every file's blob: present with the size its node declares (stat). */
  blobs?: BlobService;
  /** With `blobs`: read every blob in full, which re-hashes each chunk and the whole blob. */
  rehash?: boolean;
  /** Blobs checked at once (default 16; 4 with rehash). */
  blobConcurrency?: number;
}

export interface VerifyResult {
  directories: number;
  problems: number;
  /** Distinct blobs checked (with `blobs`). */
  blobs?: number;
}

interface Pending {
  digest: Digest;
  /** The path by which the walk first reached it. */
  path: string;
  /** The parent it was first reached from, undefined for a root. */
  parent?: string;
}

/** One parent's reference to a child directory: the size it declares must match the child's. */
interface Edge {
  parent: string;
  /** The child's path through this parent. */
  path: string;
  declaredSize: bigint;
}

/**
 * Checks the blobs of the files of each directory read: each distinct digest
 * once (stat, or a full read with rehash), and every file's declared size
 * against what was found. Memory: one entry per distinct blob checked.
 */
class BlobChecker {
  /** Blob digest (hex) → its stored size, or what is wrong with it. */
  private readonly checked = new Map<string, Promise<number | { kind: ProblemKind; message: string }>>();
  private readonly limit: ReturnType<typeof pLimit>;
  count = 0;
  bytes = 0;

  constructor(
    private readonly blobs: BlobService,
    private readonly rehash: boolean,
    concurrency: number | undefined,
    private readonly report: (p: Problem) => void,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.limit = pLimit(concurrency ?? (rehash ? 4 : 16));
  }

  /**
   * Checks every file of `directory`, reporting a problem per file (every
   * path a missing blob affects is named). `where(name)` is the file's path,
   * or (`inTree` false, whole-store mode) a description of where it is.
   */
  async checkFiles(directory: Directory, where: (name: string) => string, inTree: boolean): Promise<void> {
    await Promise.all(
      directory.files.map(async (file) => {
        const digest = Digest.fromBytes(file.digest);
        let found = this.checked.get(digest.hex);
        if (!found) {
          found = this.limit(() => this.check(digest));
          this.checked.set(digest.hex, found);
        }
        const actual = await found;
        const problem =
          typeof actual !== "number"
            ? actual
            : BigInt(actual) !== file.size
              ? { kind: "blob-size-mismatch" as const, message: `declared size ${file.size}, stored ${actual} bytes` }
              : undefined;
        if (!problem) return;
        const path = where(escapeName(file.name));
        this.report(
          inTree
            ? { kind: problem.kind, digest: digest.hex, path, message: problem.message }
            : { kind: problem.kind, digest: digest.hex, message: `${path}: ${problem.message}` },
        );
      }),
    );
  }

  private async check(digest: Digest): Promise<number | { kind: ProblemKind; message: string }> {
    this.count++;
    const missing = { kind: "blob-missing" as const, message: "blob not stored" };
    try {
      if (!this.rehash) {
        const stat = await this.blobs.stat(digest, { signal: this.signal });
        return stat ? stat.size : missing;
      }
      const stream = await this.blobs.read(digest, { signal: this.signal });
      if (!stream) return missing;
      let size = 0;
      for await (const part of stream) {
        size += part.length;
        this.bytes += part.length;
      }
      return size;
    } catch (e) {
      const corrupt = isCastoreError(e, "CORRUPTION");
      return { kind: corrupt ? "blob-corrupt" : "error", message: (e as Error).message };
    }
  }
}

/** "actual 4", or under snix-compat "actual 4 (snix-compat accepts 4..7)": the sizes the mode would take. */
function describeActual(range: SizeRange, mode: SizeCheck): string {
  const accepted =
    mode === "snix-compat" && range.legacyMax !== range.canonical
      ? ` (snix-compat accepts ${range.canonical}..${range.legacyMax})`
      : "";
  return `actual ${range.canonical}${accepted}`;
}

/** Reads one directory, turning a read failure into a problem. */
async function read(
  service: DirectoryService,
  digest: Digest,
  signal?: AbortSignal,
): Promise<{ directory?: Directory; problem?: Omit<Problem, "path"> }> {
  try {
    const directory = await service.get(digest, { signal });
    if (!directory) return { problem: { kind: "missing", digest: digest.hex, message: "not stored" } };
    return { directory };
  } catch (e) {
    const kind: ProblemKind = isCastoreError(e, "CORRUPTION") ? "corrupt" : "error";
    return { problem: { kind, digest: digest.hex, message: (e as Error).message } };
  }
}

/**
 * Walks the closures of `roots`, each directory once, level by level, and
 * checks every edge: a directory shared by several parents is read once, but
 * the size each parent declares is compared with it (an edge to a directory
 * not read yet waits for it).
 */
export async function verifyRoots(
  service: DirectoryService,
  roots: Digest[],
  opts: VerifyOptions = {},
): Promise<VerifyResult> {
  const limit = pLimit(opts.concurrency ?? 16);
  const mode = opts.sizeCheck ?? "exact";
  const seen = new Set<string>();
  /** Accepted sizes of the directories read so far; null where the read failed (its problem is reported already). */
  const sizes = new Map<string, SizeRange | null>();
  /** Edges to directories seen but not read yet, by the child's digest. */
  const waiting = new Map<string, Edge[]>();
  const progress: VerifyProgress = { directories: 0, problems: 0 };
  const report = (p: Problem) => {
    progress.problems++;
    opts.onProblem?.(p);
  };
  const blobs = opts.blobs
    ? new BlobChecker(opts.blobs, opts.rehash ?? false, opts.blobConcurrency, report, opts.signal)
    : undefined;
  const checkEdge = (child: string, edge: Edge, actual: SizeRange | null) => {
    if (actual === null || declaredSizeAccepted(edge.declaredSize, actual, mode)) return;
    report({
      kind: "size-mismatch",
      digest: child,
      path: edge.path,
      message: `declared size ${edge.declaredSize} in ${edge.parent}, ${describeActual(actual, mode)}`,
    });
  };
  const settle = (child: string, actual: SizeRange | null) => {
    sizes.set(child, actual);
    for (const edge of waiting.get(child) ?? []) checkEdge(child, edge, actual);
    waiting.delete(child);
  };
  let level: Pending[] = [];
  for (const root of roots) {
    if (!seen.has(root.hex)) {
      seen.add(root.hex);
      level.push({ digest: root, path: "" });
    }
  }
  while (level.length > 0) {
    const next: Pending[] = [];
    await Promise.all(
      level.map((item) =>
        limit(async () => {
          const { directory, problem } = await read(service, item.digest, opts.signal);
          progress.directories++;
          if (problem) {
            const where = item.parent ? ` (child of ${item.parent})` : "";
            report({ ...problem, path: item.path, message: problem.message + where });
            settle(item.digest.hex, null);
          } else if (directory) {
            settle(item.digest.hex, sizeRangeOf(directory));
            await blobs?.checkFiles(directory, (name) => (item.path ? `${item.path}/${name}` : name), true);
            for (const child of directory.directories) {
              const childDigest = Digest.fromBytes(child.digest);
              const name = escapeName(child.name);
              const path = item.path ? `${item.path}/${name}` : name;
              const edge: Edge = { parent: item.digest.hex, path, declaredSize: child.size };
              const known = sizes.get(childDigest.hex);
              if (known !== undefined) checkEdge(childDigest.hex, edge, known);
              else {
                const edges = waiting.get(childDigest.hex);
                if (edges) edges.push(edge);
                else waiting.set(childDigest.hex, [edge]);
              }
              if (seen.has(childDigest.hex)) continue;
              seen.add(childDigest.hex);
              next.push({ digest: childDigest, path, parent: item.digest.hex });
            }
          }
          if (blobs) Object.assign(progress, { blobs: blobs.count, blobBytes: blobs.bytes });
          opts.onProgress?.(progress);
        }),
      ),
    );
    level = next;
  }
  return { directories: progress.directories, problems: progress.problems, ...(blobs ? { blobs: blobs.count } : {}) };
}

/**
 * Verifies every stored directory of a store that can list its digests: one
 * pass re-reads each directory and records its size, a second checks each
 * child reference against those sizes. Memory grows with the number of
 * stored directories (one digest and size each), never with their contents.
 */
export async function verifyStore(service: DirectoryService, opts: VerifyOptions = {}): Promise<VerifyResult> {
  if (!service.listDigests) throw new Error("this store cannot list its directories: give the root digests to verify");
  const limit = pLimit(opts.concurrency ?? 16);
  const mode = opts.sizeCheck ?? "exact";
  const sizes = new Map<string, SizeRange | null>(); // null: unreadable
  const progress: VerifyProgress = { directories: 0, problems: 0 };
  const report = (p: Problem) => {
    progress.problems++;
    opts.onProblem?.(p);
  };
  const blobs = opts.blobs
    ? new BlobChecker(opts.blobs, opts.rehash ?? false, opts.blobConcurrency, report, opts.signal)
    : undefined;
  const children: { parent: string; digest: string; size: bigint; name: string }[] = [];
  let inFlight: Promise<void>[] = [];
  // A key that is not a digest is one more problem: the listing goes on past it.
  const onInvalidKey = (bad: InvalidStoredKey) => report({ kind: "invalid-key", digest: bad.key, message: bad.reason });
  for await (const digest of service.listDigests({ signal: opts.signal, onInvalidKey })) {
    inFlight.push(
      limit(async () => {
        const { directory, problem } = await read(service, digest, opts.signal);
        progress.directories++;
        if (problem) {
          sizes.set(digest.hex, null);
          report(problem);
        } else if (directory) {
          sizes.set(digest.hex, sizeRangeOf(directory));
          for (const c of directory.directories) {
            children.push({ parent: digest.hex, digest: hexOf(c.digest), size: c.size, name: escapeName(c.name) });
          }
          await blobs?.checkFiles(directory, (name) => `file ${name} of directory ${digest.hex}`, false);
        }
        if (blobs) Object.assign(progress, { blobs: blobs.count, blobBytes: blobs.bytes });
        opts.onProgress?.(progress);
      }),
    );
    if (inFlight.length >= 1024) {
      await Promise.all(inFlight);
      inFlight = [];
    }
  }
  await Promise.all(inFlight);
  for (const c of children) {
    const size = sizes.get(c.digest);
    if (size === undefined) {
      report({ kind: "missing", digest: c.digest, message: `not stored, but ${c.parent} refers to it as ${c.name}` });
    } else if (size !== null && !declaredSizeAccepted(c.size, size, mode)) {
      report({
        kind: "size-mismatch",
        digest: c.digest,
        message: `declared size ${c.size} as ${c.name} in ${c.parent}, ${describeActual(size, mode)}`,
      });
    }
  }
  return { directories: progress.directories, problems: progress.problems, ...(blobs ? { blobs: blobs.count } : {}) };
}
