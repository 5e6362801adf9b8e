import { ClosureValidator, type ClosureEntry } from "@castore-ts/core";
import { generateTree } from "@castore-ts/conformance";
import { describe, expect, it } from "vitest";
import { binaryCopyChunks, singleFieldOfBinaryCopy } from "./postgres-wire.js";

/** The rows as PostgreSQL's binary COPY format lays them out, written field by field (children from the decoded directory). */
function expectedCopy(entries: ClosureEntry[]): Buffer {
  const parts = [Buffer.concat([Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), Buffer.alloc(8)])];
  const int32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(n, 0);
    return b;
  };
  for (const e of entries) {
    const head = Buffer.alloc(6);
    head.writeInt16BE(3, 0);
    head.writeInt32BE(32, 2);
    const children: Buffer[] = [];
    for (const c of e.directory.directories) {
      const child = Buffer.from(c.digest);
      if (!children.some((x) => x.equals(child))) children.push(child);
    }
    const column = Buffer.concat(children);
    parts.push(
      head,
      Buffer.from(e.digest.bytes),
      int32(e.bytes.length),
      Buffer.from(e.bytes),
      int32(column.length),
      column,
    );
  }
  parts.push(Buffer.from([0xff, 0xff]));
  return Buffer.concat(parts);
}

describe("binary COPY framing", () => {
  it("frames core's entries (digest and bytes in one view) and plain entries the same, across chunks", () => {
    const validator = new ClosureValidator();
    for (const d of generateTree({ directories: 3000, seed: 7 }).directories) validator.add(d);
    const core = validator.finish().entries;
    expect(core[0].digestAndBytes).toBeDefined();
    const plain: ClosureEntry[] = core.map((e) => ({ digest: e.digest, bytes: e.bytes, directory: e.directory }));
    const framing = { header: true, trailer: true };
    const fromCore = [...binaryCopyChunks(core, framing)];
    expect(fromCore.length).toBeGreaterThan(1); // 3 000 rows of ~170 bytes: more than one 256 KiB chunk
    const want = expectedCopy(plain);
    expect(Buffer.concat(fromCore).equals(want)).toBe(true);
    expect(Buffer.concat([...binaryCopyChunks(plain, framing)]).equals(want)).toBe(true);
  });
});

describe("singleFieldOfBinaryCopy", () => {
  const header = Buffer.concat([Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), Buffer.alloc(8)]);
  const trailer = Buffer.from([0xff, 0xff]);
  function row(value: Buffer): Buffer {
    const head = Buffer.alloc(6);
    head.writeInt16BE(1, 0);
    head.writeInt32BE(value.length, 2);
    return Buffer.concat([head, value]);
  }

  it("returns the field of the one row, undefined for no row, and skips a header extension", () => {
    const value = Buffer.from("chunk bytes");
    expect(singleFieldOfBinaryCopy(Buffer.concat([header, row(value), trailer]))?.equals(value)).toBe(true);
    expect(singleFieldOfBinaryCopy(Buffer.concat([header, trailer]))).toBeUndefined();
    expect(singleFieldOfBinaryCopy(Buffer.concat([header, row(Buffer.alloc(0)), trailer]))?.length).toBe(0);
    const extended = Buffer.concat([header.subarray(0, 15), Buffer.from([0, 0, 0, 3, 9, 9, 9])]);
    expect(singleFieldOfBinaryCopy(Buffer.concat([extended, row(value), trailer]))?.equals(value)).toBe(true);
  });

  it("rejects output of another shape, saying what is wrong", () => {
    const value = Buffer.from("x");
    expect(() => singleFieldOfBinaryCopy(Buffer.from("not a copy at all, not at all"))).toThrow(
      /no binary COPY header/,
    );
    expect(() => singleFieldOfBinaryCopy(Buffer.concat([header, row(value), row(value), trailer]))).toThrow(
      /more than one row/,
    );
    expect(() => singleFieldOfBinaryCopy(Buffer.concat([header, row(value)]).subarray(0, -1))).toThrow(/truncated/);
    const two = Buffer.alloc(2);
    two.writeInt16BE(2, 0);
    expect(() => singleFieldOfBinaryCopy(Buffer.concat([header, two, trailer]))).toThrow(/2 fields, expected 1/);
  });
});
