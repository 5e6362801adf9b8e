/**
 * A reader's re-check of declared sizes (spec §1.1): while a closure arrives
 * root to leaves, every DirectoryNode's declared size is compared with the
 * child it refers to, whichever of the two arrives first (a DAG may refer to
 * a directory again from a deeper level, after it was received). A size out
 * of what the mode accepts is a CorruptionError: the data came from a store.
 */
import { type Digest, digestKey, hexOf } from "./digest.js";
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

interface Received {
  canonical: bigint;
  entries: number;
}

interface Reference {
  parent: Digest;
  index: number;
  /** The node's name bytes (the parent's own array: no copy). */
  name: Uint8Array;
  declared: bigint;
}

export class ReadSizeChecker {
  private readonly mode: SizeCheck;
  /**
   * Every directory received, by digestKey: its canonical size and entry
   * count (the accepted range is made from them only for a size that is not
   * canonical: most are, and a range is two more bigints per directory).
   */
  private readonly ranges = new Map<string, Received>();
  /** References to directories not received yet, by the child's digestKey (one, or several for a DAG). */
  private readonly pending = new Map<string, Reference | Reference[]>();

  constructor(private readonly opts: ReadSizeOptions = {}) {
    this.mode = opts.sizeCheck ?? "exact";
  }

  /**
   * A directory arrived: checks the references to it seen so far, then its
   * own references (now, for children already received; else when they
   * arrive). `onNewChild` is called with each child digest this checker has
   * not met before (neither received nor referred to): a walk's "not seen
   * yet", without a set of its own.
   */
  receive(
    digest: Digest,
    directory: Directory,
    onNewChild?: (child: Uint8Array) => void,
    /** The directory's size (spec §1), when the caller has it (validateDirectorySize returns it). */
    size?: bigint,
    /** digestKey(digest.bytes), when the caller has it. */
    key = digestKey(digest.bytes),
  ): void {
    const entries = directory.directories.length + directory.files.length + directory.symlinks.length;
    const range: Received = { canonical: size ?? sizeRangeOf(directory).canonical, entries };
    this.ranges.set(key, range);
    const waiting = this.pending.get(key);
    if (waiting !== undefined) {
      this.pending.delete(key);
      if (Array.isArray(waiting)) for (const ref of waiting) this.check(ref, digest.bytes, range);
      else this.check(waiting, digest.bytes, range);
    }
    const children = directory.directories;
    for (let index = 0; index < children.length; index++) {
      const child = children[index];
      const childKey = digestKey(child.digest);
      const ref: Reference = { parent: digest, index, name: child.name, declared: child.size };
      const known = this.ranges.get(childKey);
      if (known) {
        this.check(ref, child.digest, known);
        continue;
      }
      const refs = this.pending.get(childKey);
      if (refs === undefined) {
        this.pending.set(childKey, ref);
        onNewChild?.(child.digest);
      } else if (Array.isArray(refs)) refs.push(ref);
      else this.pending.set(childKey, [refs, ref]);
    }
  }

  /** Whether a directory (by digestKey) was received, or is referred to and not received yet. */
  stateOf(key: string): "received" | "referred" | undefined {
    if (this.ranges.has(key)) return "received";
    return this.pending.has(key) ? "referred" : undefined;
  }

  /** Whether a directory (by digestKey) is referred to and not received yet: stateOf(key) === "referred", in one lookup. */
  isReferred(key: string): boolean {
    return this.pending.has(key);
  }

  /** How many directories are referred to and not received yet. */
  get referredCount(): number {
    return this.pending.size;
  }

  /** The digestKey of each directory referred to and not received yet, in the order first referred to. */
  referredKeys(): IterableIterator<string> {
    return this.pending.keys();
  }

  /** `child`: the child's digest bytes, made hex only for a message (most sizes are canonical). */
  private check(ref: Reference, childDigest: Uint8Array, received: Received): void {
    if (ref.declared === received.canonical) return;
    const range = sizeRangeFrom(received.canonical, received.entries);
    const verdict = classifyDeclaredSize(ref.declared, range);
    if (verdict === "canonical") return;
    const child = hexOf(childDigest);
    if (!sizeVerdictAccepted(verdict, this.mode)) {
      throw new CorruptionError(
        `directory ${ref.parent} declares size ${ref.declared} for directories[${ref.index}] ${displayName(ref.name)} (${child}), ` +
          `but ${describeAcceptedSizes(range, this.mode)}`,
      );
    }
    this.opts.onLegacySize?.({
      parent: ref.parent,
      index: ref.index,
      name: displayName(ref.name),
      child,
      declared: ref.declared,
      range,
    });
  }
}
