import { describe, expect, it } from "vitest";
import { DigestIndex, type DigestIndexed } from "./digest-index.js";

class Row implements DigestIndexed<Row> {
  nextSamePrefix: Row | undefined = undefined;
  constructor(
    readonly digestAndBytes: Uint8Array,
    readonly name: string,
  ) {}
}

/** 32 bytes: `prefix` in the first four, `tail` in the last. */
function digest(prefix: number[], tail: number): Uint8Array {
  const d = new Uint8Array(32);
  d.set(prefix);
  d[31] = tail;
  return d;
}

describe("DigestIndex", () => {
  it("finds records whose digests share the indexed 30 bits, compared on all 32 bytes", () => {
    const index = new DigestIndex<Row>();
    // The top two bits of byte 3 are not indexed: a, b and c share one chain.
    const [a, b, c] = [
      new Row(digest([1, 2, 3, 4], 0), "a"),
      new Row(digest([1, 2, 3, 0x44], 0), "b"),
      new Row(digest([1, 2, 3, 4], 9), "c"),
    ];
    for (const r of [a, b, c]) {
      expect(index.get(r.digestAndBytes)).toBeUndefined();
      index.add(r);
    }
    expect([a, b, c].map((r) => index.get(Uint8Array.from(r.digestAndBytes))?.name)).toEqual(["a", "b", "c"]);
    expect(index.get(digest([1, 2, 3, 4], 1))).toBeUndefined();
    expect(index.get(digest([9, 2, 3, 4], 0))).toBeUndefined();
    expect(index.size).toBe(3);
    expect([...index.values()].map((r) => r.name).sort()).toEqual(["a", "b", "c"]);
    index.clear();
    expect(index.size).toBe(0);
    expect(index.get(a.digestAndBytes)).toBeUndefined();
  });

  it("deletes a record from the head, middle or end of a shared chain, and only that record", () => {
    for (const victim of ["a", "b", "c"]) {
      const index = new DigestIndex<Row>();
      const rows = [
        new Row(digest([1, 2, 3, 4], 0), "a"),
        new Row(digest([1, 2, 3, 0x44], 0), "b"),
        new Row(digest([1, 2, 3, 4], 9), "c"),
      ];
      rows.forEach((r) => index.add(r));
      const gone = rows.find((r) => r.name === victim)!;
      expect(index.delete(Uint8Array.from(gone.digestAndBytes))).toBe(true);
      expect(index.delete(gone.digestAndBytes)).toBe(false);
      expect(index.get(gone.digestAndBytes)).toBeUndefined();
      expect(index.size).toBe(2);
      const rest = rows.filter((r) => r !== gone);
      expect(rest.map((r) => index.get(r.digestAndBytes)?.name)).toEqual(rest.map((r) => r.name));
      expect([...index.values()].map((r) => r.name).sort()).toEqual(rest.map((r) => r.name));
    }
  });
});
