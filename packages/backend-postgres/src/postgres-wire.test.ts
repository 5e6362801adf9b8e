import { ClosureValidator, type ClosureEntry } from "@castore-ts/core";
import { generateTree } from "@castore-ts/conformance";
import { describe, expect, it } from "vitest";
import { binaryCopyChunks } from "./postgres-wire.js";

/** The rows as PostgreSQL's binary COPY format lays them out, written field by field. */
function expectedCopy(entries: ClosureEntry[]): Buffer {
  const parts = [Buffer.concat([Buffer.from("PGCOPY\n\xff\r\n\0", "latin1"), Buffer.alloc(8)])];
  for (const e of entries) {
    const head = Buffer.alloc(10);
    head.writeInt16BE(2, 0);
    head.writeInt32BE(32, 2);
    const length = Buffer.alloc(4);
    length.writeInt32BE(e.bytes.length, 0);
    parts.push(head.subarray(0, 6), Buffer.from(e.digest.bytes), length, Buffer.from(e.bytes));
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
