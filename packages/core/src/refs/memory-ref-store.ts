/**
 * Refs in a Map, for stores that live in this process (memory://) and for
 * tests. Every step is synchronous under the hood, so compare-and-set is
 * atomic by construction.
 */
import type { Digest } from "../digest.js";
import { throwIfAborted } from "../errors.js";
import type { CallOptions } from "../service.js";
import type { Ref, RefExpectation, RefListOptions, RefStore } from "./service.js";

export class MapRefStore implements RefStore {
  private readonly refs = new Map<string, Digest>();

  async getRef(name: string, opts: CallOptions = {}): Promise<Digest | undefined> {
    throwIfAborted(opts.signal);
    return this.refs.get(name);
  }

  async compareAndSetRef(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    opts: CallOptions = {},
  ): Promise<{ swapped: boolean; current: Digest | undefined }> {
    throwIfAborted(opts.signal);
    const current = this.refs.get(name);
    if (!refHolds(current, expect)) return { swapped: false, current };
    if (digest === null) this.refs.delete(name);
    else this.refs.set(name, digest);
    return { swapped: true, current };
  }

  async *listRefs(opts: RefListOptions = {}): AsyncIterable<Ref> {
    const prefix = opts.prefix ?? "";
    // A snapshot, sorted: changes during the listing do not disturb it.
    const names = [...this.refs.keys()].filter((n) => n.startsWith(prefix)).sort(compareNames);
    for (const name of names) {
      throwIfAborted(opts.signal);
      const digest = this.refs.get(name);
      if (digest) yield { name, digest };
    }
  }

  async close(): Promise<void> {}
}

/** Whether a ref holding `current` meets `expect` (undefined: anything; null: absent). */
export function refHolds(current: Digest | undefined, expect: RefExpectation): boolean {
  if (expect === undefined) return true;
  if (expect === null) return current === undefined;
  return current !== undefined && current.equals(expect);
}

/** Ref names are ASCII: code-unit order is byte order, the order every store lists in. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
