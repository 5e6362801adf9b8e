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

interface Reference {
  parent: Digest;
  index: number;
  /** The node's name bytes (the parent's own array: no copy). */
  name: Uint8Array;
  declared: bigint;
}

export class ReadSizeChecker {
  private readonly mode: SizeCheck;
  /** The accepted range of every directory received, by digestKey. */
  private readonly ranges = new Map<string, SizeRange>();
  /** References to directories not received yet, by the child's digestKey. */
  private readonly pending = new Map<string, Reference[]>();

  constructor(private readonly opts: ReadSizeOptions = {}) {
    this.mode = opts.sizeCheck ?? "exact";
  }

  /**
   * A directory arrived: checks the references to it seen so far, then its
   * own references (now, for children already received; else when they arrive).
   */
  receive(digest: Digest, directory: Directory): void {
    const key = digestKey(digest.bytes);
    const range = sizeRangeOf(directory);
    this.ranges.set(key, range);
    const waiting = this.pending.get(key);
    if (waiting) {
      this.pending.delete(key);
      for (const ref of waiting) this.check(ref, digest.hex, range);
    }
    const children = directory.directories;
    for (let index = 0; index < children.length; index++) {
      const child = children[index];
      const childKey = digestKey(child.digest);
      const ref: Reference = { parent: digest, index, name: child.name, declared: child.size };
      const known = this.ranges.get(childKey);
      if (known) this.check(ref, hexOf(child.digest), known);
      else {
        const refs = this.pending.get(childKey);
        if (refs) refs.push(ref);
        else this.pending.set(childKey, [ref]);
      }
    }
  }

  private check(ref: Reference, child: string, range: SizeRange): void {
    const verdict = classifyDeclaredSize(ref.declared, range);
    if (verdict === "canonical") return;
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
