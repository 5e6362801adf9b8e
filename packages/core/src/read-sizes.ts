/**
 * A reader's re-check of declared sizes (spec §1.1): while a closure arrives
 * root to leaves, every DirectoryNode's declared size is compared with the
 * child it refers to, whichever of the two arrives first (a DAG may refer to
 * a directory again from a deeper level, after it was received). A size out
 * of what the mode accepts is a CorruptionError: the data came from a store.
 */
import { type Digest, digestOwning, hexOf } from "./digest.js";
import { digestBytesEqual } from "./digest-bytes.js";
import { prefixOf } from "./digest-index.js";
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

interface Reference {
  parent: Digest;
  index: number;
  /** The node's name bytes (the parent's own array: no copy). */
  name: Uint8Array;
  declared: bigint;
}

/**
 * One digest met by the checker: received (with its canonical size and entry
 * count), or referred to and not received yet (with the references waiting
 * for it: the first in fields of its own, any more, from a DAG, in a list).
 * One object per digest and none per reference in a tree: a Map keyed by
 * string, a record and a reference object per directory were a third of an
 * in-process getRecursive.
 *
 * Its 32 digest bytes are a copy at `at` in a chunk shared with other
 * records (the received directories' bytes belong to the caller, who may
 * change them; a buffer or view per digest would be one more object each).
 * A walk queues the record itself (`onNewChild`), reads its `digest` (made
 * from that copy when first asked: readers that do not walk never ask) and
 * hands it back to `receive`, which then need not look it up again.
 */
export class MetDigest {
  /** The next record whose digest has the same 30-bit prefix. */
  nextSamePrefix: MetDigest | undefined = undefined;
  received = false;
  canonical = 0n;
  entries = 0;
  /** The first waiting reference (while not received): its parent, index in it, name and declared size. */
  refParent: Digest | undefined = undefined;
  refIndex = 0;
  refName: Uint8Array | undefined = undefined;
  refDeclared = 0n;
  /** Waiting references after the first (a DAG). */
  moreRefs: Reference[] | undefined = undefined;

  constructor(
    private readonly chunk: Uint8Array,
    private readonly at: number,
    private digestObject: Digest | undefined,
  ) {}

  get digest(): Digest {
    return (this.digestObject ??= digestOwning(this.chunk.subarray(this.at, this.at + 32)));
  }

  is(digest: Uint8Array): boolean {
    return digestBytesEqual(this.chunk, this.at, digest, 0);
  }
}

export class ReadSizeChecker {
  private readonly mode: SizeCheck;
  /** Every digest met (received, or referred to and not received yet), by its 30-bit prefix, chained. */
  private readonly known = new Map<number, MetDigest>();
  /** How many digests are referred to and not received yet. */
  private waiting = 0;
  private chunk = new Uint8Array(0);
  private used = 0;

  constructor(private readonly opts: ReadSizeOptions = {}) {
    this.mode = opts.sizeCheck ?? "exact";
  }

  private find(digest: Uint8Array, prefix: number): MetDigest | undefined {
    for (let k = this.known.get(prefix); k !== undefined; k = k.nextSamePrefix) if (k.is(digest)) return k;
    return undefined;
  }

  /** `known`: the caller's Digest of these bytes, when it has one (Digests never change). */
  private add(digest: Uint8Array, prefix: number, known?: Digest): MetDigest {
    if (this.used === this.chunk.length) {
      this.chunk = new Uint8Array(
        Math.min(Math.max(2 * this.chunk.length, 32 * FIRST_CHUNK_DIGESTS), 32 * MOST_CHUNK_DIGESTS),
      );
      this.used = 0;
    }
    this.chunk.set(digest, this.used);
    const k = new MetDigest(this.chunk, this.used, known);
    this.used += 32;
    k.nextSamePrefix = this.known.get(prefix);
    this.known.set(prefix, k);
    return k;
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
    onNewChild?: (child: MetDigest) => void,
    /** The directory's size (spec §1), when the caller has it (validateDirectorySize returns it). */
    size?: bigint,
    /** The record `onNewChild` gave for `digest`, when the caller kept it: spares looking it up. */
    met?: MetDigest,
  ): void {
    const children = directory.directories;
    const entries = children.length + directory.files.length + directory.symlinks.length;
    const canonical = size ?? sizeRangeOf(directory).canonical;
    const bytes = digest.bytes;
    let self = met;
    if (self === undefined) {
      const prefix = prefixOf(bytes);
      self = this.find(bytes, prefix) ?? this.add(bytes, prefix, digest);
    }
    if (self.refParent !== undefined) {
      // Referred to before: check what was declared for it, then forget the references.
      this.waiting--;
      const first = self.refParent!;
      self.refParent = undefined;
      this.check(first, self.refIndex, self.refName!, self.refDeclared, bytes, canonical, entries);
      self.refName = undefined;
      const more = self.moreRefs;
      self.moreRefs = undefined;
      if (more) for (const r of more) this.check(r.parent, r.index, r.name, r.declared, bytes, canonical, entries);
    }
    self.received = true;
    self.canonical = canonical;
    self.entries = entries;
    for (let index = 0; index < children.length; index++) {
      const child = children[index];
      const childDigest = child.digest;
      const childPrefix = prefixOf(childDigest);
      const known = this.find(childDigest, childPrefix);
      if (known === undefined) {
        const k = this.add(childDigest, childPrefix);
        k.refParent = digest;
        k.refIndex = index;
        k.refName = child.name;
        k.refDeclared = child.size;
        this.waiting++;
        onNewChild?.(k);
      } else if (known.received) {
        this.check(digest, index, child.name, child.size, childDigest, known.canonical, known.entries);
      } else {
        (known.moreRefs ??= []).push({ parent: digest, index, name: child.name, declared: child.size });
      }
    }
  }

  /** Whether a directory (by its 32 digest bytes) was received, or is referred to and not received yet. */
  stateOf(digest: Uint8Array): "received" | "referred" | undefined {
    const k = this.find(digest, prefixOf(digest));
    if (k === undefined) return undefined;
    return k.received ? "received" : "referred";
  }

  /** How many directories are referred to and not received yet. */
  get referredCount(): number {
    return this.waiting;
  }

  /** Whether a directory (by its 32 digest bytes) is referred to and not received yet: stateOf === "referred". */
  isReferred(digest: Uint8Array): boolean {
    const k = this.find(digest, prefixOf(digest));
    return k !== undefined && !k.received;
  }

  /** Each directory referred to and not received yet. */
  *referred(): Generator<Digest> {
    for (const head of this.known.values())
      for (let k: MetDigest | undefined = head; k !== undefined; k = k.nextSamePrefix) if (!k.received) yield k.digest;
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
