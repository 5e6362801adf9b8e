/**
 * Closure checks for both directions of the wire (spec §3):
 * - ClosureValidator: an upload, leaves to root;
 * - RootToLeavesChecker: a download, root to leaves.
 */
import { DIGEST_LENGTH, Digest, digestKey, hexOf } from "./digest.js";
import { ClosureError, CorruptionError, ValidationError } from "./errors.js";
import { ByteArena } from "./arena.js";
import { DigestIndex, type DigestIndexed } from "./digest-index.js";
import { ScratchEncoder, decodeDirectory, encodeDirectory } from "./canonical.js";
import { blake3, blake3Matches } from "./hash.js";
import { type Directory, directorySize, displayName } from "./model.js";
import { type ReadSizeOptions, ReadSizeChecker } from "./read-sizes.js";
import {
  type SizeCheck,
  declaredSizeAccepted,
  describeAcceptedSizes,
  sizeRangeFrom,
  type SizeRange,
} from "./size-check.js";
import { checkDirectoryShape, validateDirectorySize } from "./validate.js";

/** One directory of a checked upload, with its canonical bytes. */
export interface ClosureEntry {
  readonly digest: Digest;
  readonly bytes: Uint8Array;
  /**
   * Optional: the digest's 32 bytes followed by `bytes`, in one view, the
   * same data as `digest` and `bytes`. Core's checked uploads
   * (ClosureValidator) always provide it; entries made elsewhere (a repair,
   * a test's own) may not, so a store reads it with a fallback to `digest`
   * and `bytes`. A store that keeps or copies both (the memory store; the
   * postgres COPY rows) prefers it: making typed-array views and Digest
   * objects per directory was most of the memory store's commit time.
   * Part of the API, documented in docs/writing-a-backend.md.
   */
  readonly digestAndBytes?: Uint8Array;
  /** The decoded directory; ClosureValidator's entries decode it from `bytes` on each read. */
  readonly directory: Directory;
}

/**
 * A child directory that a partial upload refers to without carrying it
 * (spec §3.6): the store must hold it, with a size each declaration accepts.
 */
export interface ExternalChild {
  readonly digest: Digest;
  /** Every distinct size the upload's DirectoryNodes declare for it. */
  readonly declaredSizes: readonly bigint[];
  /** The first reference to it, for error messages: "directory <hex> directories[i] <name>". */
  readonly referredBy: string;
}

export interface ValidatedClosure {
  root: Digest;
  /** Every distinct directory of the upload, leaves to root (the root last). */
  entries: ClosureEntry[];
  /** A partial upload's references to stored directories it did not carry; empty for a whole closure. */
  external: readonly ExternalChild[];
}

/** How a ClosureValidator treats a child directory not sent earlier in the upload. */
export interface ClosureValidatorOptions {
  sizeCheck?: SizeCheck;
  /** A partial upload: such a child is recorded as external (ExternalChild) for the store to check. */
  partial?: boolean;
}

/**
 * What ClosureValidator keeps of a directory: its digest and bytes (one view
 * into the upload's arena) and what later directories' checks need. Every
 * object an upload keeps per directory until close() is work for the garbage
 * collector (a third of an upload's time when it kept the decoded directory),
 * and making a Digest and views per directory at commit cost about 1.2 µs
 * each: so the decoded directory, the Digest and the separate views are made
 * only when a store asks.
 */
class Entry implements ClosureEntry, DigestIndexed<Entry> {
  referenced = false;
  nextSamePrefix: Entry | undefined = undefined;
  private digestObject: Digest | undefined = undefined;
  constructor(
    /** The 32 digest bytes, then the canonical bytes. */
    readonly digestAndBytes: Uint8Array,
    /**
     * Its canonical size (spec §1.1) and entry count, checked against the
     * DirectoryNodes that refer to it: the accepted range is made from them
     * only for a declared size that is not the canonical one. (A range object
     * and its legacy bound per directory, kept until close(), were garbage
     * collector work on every upload, for sizes nearly always canonical.)
     */
    readonly canonicalSize: bigint,
    readonly entryCount: number,
  ) {}

  /** What a DirectoryNode may declare for it (only needed off the canonical path). */
  get sizes(): SizeRange {
    return sizeRangeFrom(this.canonicalSize, this.entryCount);
  }

  get digest(): Digest {
    return (this.digestObject ??= Digest.fromBytes(this.digestAndBytes.subarray(0, DIGEST_LENGTH)));
  }

  get bytes(): Uint8Array {
    return this.digestAndBytes.subarray(DIGEST_LENGTH);
  }

  get directory(): Directory {
    return decodeDirectory(this.bytes);
  }
}

/**
 * Checks an upload as it arrives, leaves to root: each directory is valid, its
 * child directories were sent earlier in the same upload with the declared
 * size, and at the end exactly one directory (the root) is referred to by no
 * other. Every directory's children precede it, so a single root means every
 * directory is reachable from it: connectivity needs no separate walk.
 */
export class ClosureValidator {
  private readonly byDigest = new DigestIndex<Entry>();
  private readonly entries: Entry[] = [];
  private readonly sizeCheck: SizeCheck;
  private readonly encoder = new ScratchEncoder();
  private readonly arena = new ByteArena();
  /** Entries no later directory referred to yet: the root candidates. */
  private unreferenced = 0;
  /** Set by finish(): the entries it returned are final, so a commit may read them after it. */
  private finished = false;
  /** A partial upload's references to directories it did not carry, by digest key. */
  private readonly external = new Map<string, { digest: Digest; declaredSizes: bigint[]; referredBy: string }>();

  constructor(private readonly opts: ClosureValidatorOptions = {}) {
    this.sizeCheck = opts.sizeCheck ?? "exact";
  }

  get count(): number {
    return this.entries.length;
  }

  /**
   * Checks and records one directory. `bytes`, when given, must be its
   * canonical encoding (e.g. received off the wire and strictly decoded);
   * without them the caller's object is checked for the model's types
   * (checkDirectoryShape) before it is encoded. A putter that encodes a
   * caller's object itself must check it first.
   * Returns the new entry, or undefined for a directory already in this
   * upload (ignored).
   */
  add(directory: Directory, bytes?: Uint8Array): ClosureEntry | undefined {
    if (this.finished)
      throw new ClosureError("upload already finished: no directory can be added after the closure was checked");
    // A caller's object is checked for the model's types before it is encoded (bytes given were decoded: typed).
    if (bytes === undefined) checkDirectoryShape(directory);
    // Encoded into scratch space: only a directory that is kept gets copied (into the arena).
    const canonical = bytes ?? this.encoder.encode(directory);
    const digest = blake3(canonical);
    if (this.byDigest.get(digest)) return undefined;
    let size: bigint;
    try {
      size = validateDirectorySize(directory);
    } catch (e) {
      if (e instanceof ValidationError)
        throw new ValidationError(`directory ${hexOf(digest)} failed validation: ${e.message}`);
      throw e;
    }
    const children = directory.directories;
    for (let i = 0; i < children.length; i++) {
      const child = children[i];
      const known = this.byDigest.get(child.digest);
      if (!known) {
        if (this.opts.partial) {
          this.addExternal(digest, i, child.name, child.digest, child.size);
          continue;
        }
        throw new ClosureError(
          `directory ${hexOf(digest)} refers to ${hexOf(child.digest)} (directories[${i}] ${displayName(child.name)}), ` +
            "which was not sent earlier in this upload",
        );
      }
      if (child.size !== known.canonicalSize && !declaredSizeAccepted(child.size, known.sizes, this.sizeCheck)) {
        throw new ClosureError(
          `directory ${hexOf(digest)} declares size ${child.size} for directories[${i}] ${displayName(child.name)} ` +
            `(${known.digest.hex}), but ${describeAcceptedSizes(known.sizes, this.sizeCheck)}`,
        );
      }
      if (!known.referenced) {
        known.referenced = true;
        this.unreferenced--;
      }
    }
    const entries = children.length + directory.files.length + directory.symlinks.length;
    const entry = new Entry(this.arena.copyJoined(digest, canonical), size, entries);
    this.byDigest.add(entry);
    this.entries.push(entry);
    this.unreferenced++;
    return entry;
  }

  /** Records a reference to a directory this partial upload does not carry; the store checks it at commit. */
  private addExternal(parent: Uint8Array, index: number, name: Uint8Array, child: Uint8Array, size: bigint): void {
    const key = digestKey(child);
    const seen = this.external.get(key);
    if (seen) {
      if (!seen.declaredSizes.includes(size)) seen.declaredSizes.push(size);
      return;
    }
    this.external.set(key, {
      digest: Digest.fromBytes(child),
      declaredSizes: [size],
      referredBy: `directory ${hexOf(parent)} directories[${index}] ${displayName(name)}`,
    });
  }

  /**
   * Checks the upload as a whole and returns it, leaves to root. Ends the
   * upload: later add() calls throw, so the entries returned never change
   * under a commit that is still reading them.
   */
  finish(): ValidatedClosure {
    this.finished = true;
    if (this.entries.length === 0) throw new ClosureError("empty upload: no directories were sent");
    if (this.unreferenced > 1) {
      const roots = this.entries.filter((e) => !e.referenced);
      const shown = roots
        .slice(0, 3)
        .map((r) => r.digest.hex)
        .join(", ");
      throw new ClosureError(
        `upload is not connected: ${roots.length} directories are referred to by no other (${shown}${roots.length > 3 ? ", …" : ""})`,
      );
    }
    // With every child sent before its parent, the only unreferenced directory is the last one sent.
    // A directory referred to before it was sent (then referred to again, or the upload would have two
    // roots) is in the upload after all: the earlier declarations are checked against it here.
    const external: ExternalChild[] = [];
    for (const [key, ext] of this.external) {
      const sent = this.byDigest.get(ext.digest.bytes);
      if (!sent) {
        external.push(ext);
        continue;
      }
      for (const size of ext.declaredSizes) {
        if (!declaredSizeAccepted(size, sent.sizes, this.sizeCheck))
          throw new ClosureError(
            `${ext.referredBy} declares size ${size} for ${ext.digest.hex}, but ${describeAcceptedSizes(sent.sizes, this.sizeCheck)}`,
          );
      }
      this.external.delete(key);
    }
    return { root: this.entries[this.entries.length - 1].digest, entries: this.entries, external };
  }
}

/**
 * Checks a stream of directories received root to leaves (tvix's
 * StreamIterator): each is valid, each is the root or a child of one already
 * received, each arrives once, every declared size is one `sizeCheck`
 * accepts (default "exact"; spec §1.1), and the stream does not end while
 * children are still expected. Any breach is a CorruptionError: the data
 * came from a store.
 */
export class RootToLeavesChecker {
  /**
   * What was received and what is referred to and not received yet: the
   * size checker's own record of every digest (one map lookup per digest,
   * no sets of their own).
   */
  private readonly sizes: ReadSizeChecker;
  private received = 0;

  constructor(
    readonly root: Digest,
    opts: ReadSizeOptions = {},
  ) {
    this.sizes = new ReadSizeChecker(opts);
  }

  /** Checks one received directory; `bytes` is its encoding as received, if known. Returns its digest. */
  accept(directory: Directory, bytes?: Uint8Array): Digest {
    const digest = Digest.of(bytes ?? encodeDirectory(directory));
    this.expect(digest);
    let size: bigint;
    try {
      size = validateDirectorySize(directory);
    } catch (e) {
      throw new CorruptionError(`received directory ${digest} failed validation: ${(e as Error).message}`);
    }
    this.record(digest, directory, size);
    return digest;
  }

  /**
   * Checks one directory that its store has hashed to `digest` and validated
   * already (getRecursiveEncoded): only its place in the closure and the
   * sizes declared for it, so that a stream that skips or repeats
   * directories, or ends early, is still caught.
   */
  acceptStored(digest: Digest, directory: Directory): void {
    this.expect(digest);
    this.record(digest, directory, directorySize(directory));
  }

  /** The root first, then only directories referred to and not received yet. */
  private expect(digest: Digest): void {
    const state = this.sizes.stateOf(digest.bytes);
    const expected = this.received === 0 ? digest.equals(this.root) : state === "referred";
    if (!expected) {
      const why = state === "received" ? "sent twice" : "not referred to by any directory received before it";
      throw new CorruptionError(`received unexpected directory ${digest} below root ${this.root}: ${why}`);
    }
  }

  private record(digest: Digest, directory: Directory, size: bigint): void {
    this.received++;
    this.sizes.receive(digest, directory, undefined, size);
  }

  /** How many directories are still expected. */
  get pending(): number {
    return this.received === 0 ? 1 : this.sizes.referredCount;
  }

  /** Call at the end of the stream. */
  finish(): void {
    if (this.received === 0) return; // an absent root: an empty stream is fine
    if (this.sizes.referredCount > 0) {
      throw new CorruptionError(
        `premature end of stream below root ${this.root}: still expected ${this.sizes.referredCount} directories`,
      );
    }
  }
}

/**
 * Decodes bytes read from a store under `expected` and checks them: canonical,
 * valid, and hashing to `expected`. Anything else is a CorruptionError naming
 * the digest; corrupt data is never returned.
 */
export function decodeStoredDirectory(expected: Digest, bytes: Uint8Array): Directory {
  return decodeStoredDirectorySized(expected, bytes).directory;
}

/** decodeStoredDirectory, with the directory's size (spec §1) that validation computes anyway. */
export function decodeStoredDirectorySized(
  expected: Digest,
  bytes: Uint8Array,
): { directory: Directory; size: bigint } {
  if (!blake3Matches(bytes, expected.bytes)) {
    throw new CorruptionError(`directory ${expected} is corrupt: stored bytes hash to ${Digest.of(bytes)}`);
  }
  let directory: Directory;
  let size: bigint;
  try {
    directory = decodeDirectory(bytes);
    size = validateDirectorySize(directory);
  } catch (e) {
    throw new CorruptionError(`directory ${expected} is corrupt: ${(e as Error).message}`);
  }
  return { directory, size };
}
