/**
 * Closure checks for both directions of the wire (spec §3):
 * - ClosureValidator: an upload, leaves to root;
 * - RootToLeavesChecker: a download, root to leaves.
 */
import { DIGEST_LENGTH, Digest, digestKey, hexOf } from "./digest.js";
import { ClosureError, CorruptionError, ValidationError } from "./errors.js";
import { ByteArena } from "./arena.js";
import { PackedRecords, grownTo } from "./packed-records.js";
import { SizeColumn } from "./size-column.js";
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
   * (ClosureValidator) always provide it (a new view at each read: a store
   * reads it once per entry); entries made elsewhere (a repair, a test's
   * own) may not, so a store reads it with a fallback to `digest` and
   * `bytes`. A store that keeps or copies both (the memory store; the
   * postgres COPY rows) prefers it: making a Digest object and a second
   * view per directory was most of the memory store's commit time.
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

/** ClosureValidator's fields of a record. */
const ENTRY_COUNT = 0;
const REFERENCED = 1;

/**
 * A directory of a checked upload, as a store sees it: made from the
 * validator's records on demand (its views, Digest and decoded directory
 * only when a store asks), so that an upload keeps no object per directory
 * while it is open (see PackedRecords).
 */
class Entry implements ClosureEntry {
  private digestObject: Digest | undefined = undefined;
  constructor(
    private readonly records: PackedRecords,
    private readonly record: number,
  ) {}

  get digestAndBytes(): Uint8Array {
    return this.records.viewOf(this.record);
  }

  get digest(): Digest {
    return (this.digestObject ??= Digest.fromBytes(this.records.viewOf(this.record).subarray(0, DIGEST_LENGTH)));
  }

  get bytes(): Uint8Array {
    return this.records.bytesOf(this.record);
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
 *
 * What it keeps of a directory: its digest and canonical bytes, packed into
 * the upload's arena, found through PackedRecords; and, by record number (the
 * order directories were added in), what later directories' checks need:
 * its canonical size (spec §1.1) and entry count, checked against the
 * DirectoryNodes that refer to it (the accepted range is made from them only
 * for a declared size that is not the canonical one), and whether one did.
 * No object per directory: see PackedRecords for what those cost.
 */
export class ClosureValidator {
  private readonly records = new PackedRecords();
  /** By record: the canonical size. */
  private readonly canonicalSizes = new SizeColumn();
  /** By record, two numbers: the entry count, and 1 once a later directory referred to it (REFERENCED). */
  private fields = new Uint32Array(2 * 16);
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
    return this.records.size;
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
    const record = this.addRecord(directory, bytes);
    return record < 0 ? undefined : this.entryAt(record);
  }

  /** add(), answering the new directory's record number (-1: already in this upload): no entry object made. */
  addRecord(directory: Directory, bytes?: Uint8Array): number {
    if (this.finished)
      throw new ClosureError("upload already finished: no directory can be added after the closure was checked");
    // A caller's object is checked for the model's types before it is encoded (bytes given were decoded: typed).
    if (bytes === undefined) checkDirectoryShape(directory);
    // Encoded into scratch space: only a directory that is kept gets copied (into the arena).
    const canonical = bytes ?? this.encoder.encode(directory);
    const digest = blake3(canonical);
    if (this.records.find(digest) >= 0) return -1;
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
      const known = this.records.find(child.digest);
      if (known < 0) {
        if (this.opts.partial) {
          this.addExternal(digest, i, child.name, child.digest, child.size);
          continue;
        }
        throw new ClosureError(
          `directory ${hexOf(digest)} refers to ${hexOf(child.digest)} (directories[${i}] ${displayName(child.name)}), ` +
            "which was not sent earlier in this upload",
        );
      }
      if (!this.canonicalSizes.equals(known, child.size)) {
        const sizes = this.sizesOf(known);
        if (!declaredSizeAccepted(child.size, sizes, this.sizeCheck)) {
          throw new ClosureError(
            `directory ${hexOf(digest)} declares size ${child.size} for directories[${i}] ${displayName(child.name)} ` +
              `(${hexOf(child.digest)}), but ${describeAcceptedSizes(sizes, this.sizeCheck)}`,
          );
        }
      }
      if (this.fields[2 * known + REFERENCED] === 0) {
        this.fields[2 * known + REFERENCED] = 1;
        this.unreferenced--;
      }
    }
    const at = this.arena.copyJoinedIn(digest, canonical);
    const record = this.records.addIn(this.arena.lastChunk, at, DIGEST_LENGTH + canonical.length);
    if (2 * record >= this.fields.length) {
      const capacity = this.records.capacity;
      this.canonicalSizes.reserve(capacity);
      this.fields = grownTo(this.fields, 2 * capacity);
    }
    this.canonicalSizes.set(record, size);
    this.fields[2 * record + ENTRY_COUNT] = children.length + directory.files.length + directory.symlinks.length;
    this.unreferenced++;
    return record;
  }

  /** The entry of a record addRecord() answered. */
  entryAt(record: number): ClosureEntry {
    return new Entry(this.records, record);
  }

  /** What a DirectoryNode may declare for the record's directory. */
  private sizesOf(record: number): SizeRange {
    return sizeRangeFrom(this.canonicalSizes.get(record), this.fields[2 * record + ENTRY_COUNT]);
  }

  private hexOfRecord(record: number): string {
    return hexOf(this.records.viewOf(record).subarray(0, DIGEST_LENGTH));
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
    // Records are numbered in the order added, none deleted: 0 to count - 1 is the upload's order.
    const count = this.records.size;
    if (count === 0) throw new ClosureError("empty upload: no directories were sent");
    if (this.unreferenced > 1) {
      const roots: number[] = [];
      for (let r = 0; r < count; r++) if (this.fields[2 * r + REFERENCED] === 0) roots.push(r);
      const shown = roots
        .slice(0, 3)
        .map((r) => this.hexOfRecord(r))
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
      const sent = this.records.find(ext.digest.bytes);
      if (sent < 0) {
        external.push(ext);
        continue;
      }
      const sizes = this.sizesOf(sent);
      for (const size of ext.declaredSizes) {
        if (!declaredSizeAccepted(size, sizes, this.sizeCheck))
          throw new ClosureError(
            `${ext.referredBy} declares size ${size} for ${ext.digest.hex}, but ${describeAcceptedSizes(sizes, this.sizeCheck)}`,
          );
      }
      this.external.delete(key);
    }
    const entries: ClosureEntry[] = new Array(count);
    for (let r = 0; r < count; r++) entries[r] = new Entry(this.records, r);
    return { root: entries[count - 1].digest, entries, external };
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
