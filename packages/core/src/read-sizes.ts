/**
 * A reader's re-check of declared sizes (spec §1.1): while a closure arrives
 * root to leaves, every DirectoryNode's declared size is compared with the
 * child it refers to, whichever of the two arrives first (a DAG may refer to
 * a directory again from a deeper level, after it was received). A size out
 * of what the mode accepts is a CorruptionError: the data came from a store.
 */
import { type Digest, digestOwning, hexOf } from "./digest.js";
import { PackedRecords, grownLength, grownTo } from "./packed-records.js";
import { SizeColumn } from "./size-column.js";
import { CorruptionError } from "./errors.js";
import { type Directory, displayName } from "./model.js";
import {
  type SizeCheck,
  type SizeRange,
  classifyDeclaredSize,
  describeAcceptedSizes,
  sizeRangeFrom,
  sizeRangeOf,
  sizeVerdictAccepted,
} from "./size-check.js";

/** One DirectoryNode whose declared size is legacy (accepted under snix-compat): for notes and reports. */
export interface LegacySize {
  /** The directory holding the DirectoryNode. */
  parent: Digest;
  /** The node's index in the parent's `directories`. */
  index: number;
  /** The node's name, as shown in messages. */
  name: string;
  /** The child's digest, hex. */
  child: string;
  declared: bigint;
  range: SizeRange;
}

export interface ReadSizeOptions {
  /** How declared sizes are checked; default "exact". */
  sizeCheck?: SizeCheck;
  /** Called for each accepted legacy size (only under snix-compat: exact rejects them). */
  onLegacySize?(legacy: LegacySize): void;
}

/** Digests in the first chunk of the checker's own copies (a Get of a few directories allocates little), doubling up to the most. */
const FIRST_CHUNK_DIGESTS = 32;
const MOST_CHUNK_DIGESTS = 1024;

const FIELDS = 6;
const STATE = 0;
const ENTRIES = 1;
const PARENT = 2;
const INDEX = 3;
const NAME_AT = 4;
const NAME_LENGTH = 5;

/** A record's state: just added, for a directory being received or a child met first (never seen outside receive()); referred to and waiting; received. */
const NEW = 0;
const WAITING = 1;
const RECEIVED = 2;

/** A waiting reference after the first (a DAG refers to one directory from several parents). */
interface Reference {
  parent: Digest;
  index: number;
  /** The node's name bytes (the parent's own array: no copy). */
  name: Uint8Array;
  declared: bigint;
}

/**
 * What the checker records of every digest it met, received (with its
 * canonical size and entry count) or referred to and not received yet (with
 * the reference waiting for it: its parent, index, name and declared size),
 * with no object per digest: the digests are copies in the checker's own
 * chunks (the received directories' bytes belong to the caller, who may
 * change them), found through PackedRecords, and the rest is typed arrays
 * indexed by record number (sizes in SizeColumns). A name waiting is copied
 * into a pool of its own.
 *
 * Why: an object per digest (and a map entry, a bigint, the name's view)
 * lived as long as the walk, about 300 bytes of heap per directory; a
 * getRecursive of 100 000 directories filled the old generation with them
 * and paid for a major collection of the whole heap during the walk.
 *
 * A walk queues a record's number (`onNewChild`), makes its Digest when it
 * reads it (digestOf) and hands the number back to `receive`, which then
 * need not look it up again.
 */
export class ReadSizeChecker {
  private readonly mode: SizeCheck;
  /** Every digest met: 32-byte copies in `chunk`s, found by digest. */
  private readonly records = new PackedRecords();
  private chunk = new Uint8Array(0);
  private used = 0;
  /** By record: the canonical size once received, and the first waiting reference's declared size. */
  private readonly canonicalSizes = new SizeColumn();
  private readonly declaredSizes = new SizeColumn();
  /**
   * By record, FIELDS numbers in one array: the state, the entry count, and
   * the first waiting reference's parent (a record), index, and name (where
   * in `names`, and its length).
   */
  private fields = new Uint32Array(FIELDS * 16);
  private names = new Uint8Array(256);
  private namesUsed = 0;
  /** Waiting references after the first (a DAG). */
  private readonly moreRefs = new Map<number, Reference[]>();
  /** How many digests are referred to and not received yet. */
  private waiting = 0;

  constructor(private readonly opts: ReadSizeOptions = {}) {
    this.mode = opts.sizeCheck ?? "exact";
  }

  /** The Digest of a record (a view of the checker's own copy, which never changes). */
  digestOf(record: number): Digest {
    return digestOwning(this.records.viewOf(record));
  }

  /**
   * The record of `digest`: the one met before, else a new one (state NEW)
   * for a copy in the checker's chunk. The digest is copied before the
   * lookup (one probe finds or adds it) and the copy kept only if new.
   */
  private recordOf(digest: Uint8Array): number {
    if (this.used === this.chunk.length) {
      this.chunk = new Uint8Array(
        Math.min(Math.max(2 * this.chunk.length, 32 * FIRST_CHUNK_DIGESTS), 32 * MOST_CHUNK_DIGESTS),
      );
      this.used = 0;
    }
    this.chunk.set(digest, this.used);
    const known = this.records.size;
    const record = this.records.findOrAddIn(this.chunk, this.used, 32);
    if (this.records.size === known) return record;
    this.used += 32;
    if (FIELDS * record >= this.fields.length) {
      const capacity = this.records.capacity;
      this.canonicalSizes.reserve(capacity);
      this.declaredSizes.reserve(capacity);
      this.fields = grownTo(this.fields, FIELDS * capacity);
    }
    this.fields[FIELDS * record + STATE] = NEW;
    return record;
  }

  /** Records a record's first waiting reference. */
  private refer(record: number, parent: number, index: number, name: Uint8Array, declared: bigint): void {
    const f = FIELDS * record;
    this.fields[f + STATE] = WAITING;
    this.fields[f + PARENT] = parent;
    this.fields[f + INDEX] = index;
    this.declaredSizes.set(record, declared);
    if (this.namesUsed + name.length > this.names.length)
      this.names = grownTo(this.names, Math.max(grownLength(this.names.length), this.namesUsed + name.length));
    this.names.set(name, this.namesUsed);
    this.fields[f + NAME_AT] = this.namesUsed;
    this.fields[f + NAME_LENGTH] = name.length;
    this.namesUsed += name.length;
  }

  /**
   * A directory arrived: checks the references to it seen so far, then its
   * own references (now, for children already received; else when they
   * arrive). `onNewChild` is called with the record of each child digest
   * this checker has not met before (neither received nor referred to): a
   * walk's "not seen yet", without a set of its own.
   */
  receive(
    digest: Digest,
    directory: Directory,
    onNewChild?: (child: number) => void,
    /** The directory's size (spec §1), when the caller has it (validateDirectorySize returns it). */
    size?: bigint,
    /** The record `onNewChild` gave for `digest`, when the caller kept it: spares looking it up. */
    met?: number,
  ): void {
    const children = directory.directories;
    const entries = children.length + directory.files.length + directory.symlinks.length;
    const canonical = size ?? sizeRangeOf(directory).canonical;
    const bytes = digest.bytes;
    const self = met ?? this.recordOf(bytes);
    const fields = this.fields;
    const f = FIELDS * self;
    if (fields[f + STATE] === WAITING) {
      // Referred to before: check what was declared for it, then forget the references.
      this.waiting--;
      if (!this.declaredSizes.equals(self, canonical)) {
        const at = fields[f + NAME_AT];
        this.check(
          this.digestOf(fields[f + PARENT]),
          fields[f + INDEX],
          this.names.subarray(at, at + fields[f + NAME_LENGTH]),
          this.declaredSizes.get(self),
          bytes,
          canonical,
          entries,
        );
      }
      // Only a DAG has second references: a tree never looks in the map.
      const more = this.moreRefs.size === 0 ? undefined : this.moreRefs.get(self);
      if (more) {
        this.moreRefs.delete(self);
        for (const r of more) this.check(r.parent, r.index, r.name, r.declared, bytes, canonical, entries);
      }
    }
    fields[f + STATE] = RECEIVED;
    fields[f + ENTRIES] = entries;
    this.canonicalSizes.set(self, canonical);
    for (let index = 0; index < children.length; index++) {
      const child = children[index];
      const childDigest = child.digest;
      const known = this.recordOf(childDigest);
      const state = this.fields[FIELDS * known + STATE];
      if (state === NEW) {
        this.refer(known, self, index, child.name, child.size);
        this.waiting++;
        onNewChild?.(known);
      } else if (state === RECEIVED) {
        if (!this.canonicalSizes.equals(known, child.size)) {
          const childEntries = this.fields[FIELDS * known + ENTRIES];
          this.check(digest, index, child.name, child.size, childDigest, this.canonicalSizes.get(known), childEntries);
        }
      } else {
        let more = this.moreRefs.get(known);
        if (!more) this.moreRefs.set(known, (more = []));
        more.push({ parent: digest, index, name: child.name, declared: child.size });
      }
    }
  }

  /** Whether a directory (by its 32 digest bytes) was received, or is referred to and not received yet. */
  stateOf(digest: Uint8Array): "received" | "referred" | undefined {
    const k = this.records.find(digest);
    if (k < 0) return undefined;
    return this.fields[FIELDS * k + STATE] === RECEIVED ? "received" : "referred";
  }

  /** How many directories are referred to and not received yet. */
  get referredCount(): number {
    return this.waiting;
  }

  /** Whether a directory (by its 32 digest bytes) is referred to and not received yet: stateOf === "referred". */
  isReferred(digest: Uint8Array): boolean {
    const k = this.records.find(digest);
    return k >= 0 && this.fields[FIELDS * k + STATE] === WAITING;
  }

  /** Each directory referred to and not received yet. */
  *referred(): Generator<Digest> {
    for (const record of this.records.recordNumbers())
      if (this.fields[FIELDS * record + STATE] === WAITING) yield this.digestOf(record);
  }

  /** `childDigest`: the child's digest bytes, made hex only for a message (most sizes are canonical). */
  private check(
    parent: Digest,
    index: number,
    name: Uint8Array,
    declared: bigint,
    childDigest: Uint8Array,
    canonical: bigint,
    entries: number,
  ): void {
    if (declared === canonical) return;
    const range = sizeRangeFrom(canonical, entries);
    const verdict = classifyDeclaredSize(declared, range);
    if (verdict === "canonical") return;
    const child = hexOf(childDigest);
    if (!sizeVerdictAccepted(verdict, this.mode)) {
      throw new CorruptionError(
        `directory ${parent} declares size ${declared} for directories[${index}] ${displayName(name)} (${child}), ` +
          `but ${describeAcceptedSizes(range, this.mode)}`,
      );
    }
    this.opts.onLegacySize?.({ parent, index, name: displayName(name), child, declared, range });
  }
}
