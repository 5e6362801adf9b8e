/**
 * PackedRecords against a Map of the same digests, through adds, finds,
 * deletes (the backward shift of the probe runs), re-adds into freed
 * records, growth past the first table and buffers let go when empty.
 */
import { describe, expect, it } from "vitest";
import { randomBytes } from "node:crypto";
import { PackedRecords } from "./packed-records.js";

/** `count` entries of digest + bytes packed one after another into one buffer, as an arena chunk holds them. */
function chunkOf(count: number, seed: number): Uint8Array[] {
  const sizes = Array.from({ length: count }, (_, i) => 32 + ((i * 7 + seed) % 50));
  const chunk = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  const views: Uint8Array[] = [];
  let at = 0;
  for (const size of sizes) {
    const view = chunk.subarray(at, at + size);
    view.set(randomBytes(size));
    views.push(view);
    at += size;
  }
  return views;
}

const hex = (view: Uint8Array) => Buffer.from(view.subarray(0, 32)).toString("hex");

describe("PackedRecords", () => {
  it("finds what was added and not deleted, with its bytes, through growth and many deletes", () => {
    const packed = new PackedRecords();
    const model = new Map<string, Uint8Array>();
    const chunks = Array.from({ length: 12 }, (_, c) => chunkOf(500, c)); // 6 000 entries: the table grows
    for (const [c, views] of chunks.entries()) {
      for (const view of views) {
        expect(packed.find(view)).toBe(-1);
        packed.add(view);
        model.set(hex(view), view);
      }
      // Delete every third entry of an earlier chunk, then add a few of them again.
      if (c > 0) {
        for (const [i, view] of chunks[c - 1]!.entries()) {
          if (i % 3 !== 0) continue;
          expect(packed.delete(view)).toBeGreaterThanOrEqual(0);
          expect(packed.delete(view)).toBe(-1);
          model.delete(hex(view));
        }
        for (const view of chunks[c - 1]!.filter((_, i) => i % 9 === 0)) {
          packed.add(view);
          model.set(hex(view), view);
        }
      }
    }
    expect(packed.size).toBe(model.size);
    for (const views of chunks) {
      for (const view of views) {
        const record = packed.find(view);
        const want = model.get(hex(view));
        if (!want) {
          expect(record).toBe(-1);
          continue;
        }
        expect(record).toBeGreaterThanOrEqual(0);
        expect(Buffer.from(packed.viewOf(record)).equals(Buffer.from(want))).toBe(true);
        expect(Buffer.from(packed.bytesOf(record)).equals(Buffer.from(want.subarray(32)))).toBe(true);
      }
    }
    expect(
      packed
        .recordNumbers()
        .map((r) => hex(packed.viewOf(r)))
        .sort(),
    ).toEqual([...model.keys()].sort());
  });

  it("finds a digest whose probe run was shifted back over a deleted neighbour", () => {
    // Digests that share their first four bytes share a home slot: one run, whatever the table's size.
    const packed = new PackedRecords();
    const views = chunkOf(5, 1).map((v) => {
      v.set([1, 2, 3, 4]);
      return v;
    });
    for (const view of views) packed.add(view);
    packed.delete(views[1]!);
    packed.delete(views[3]!);
    expect(views.map((v) => packed.find(v) >= 0)).toEqual([true, false, true, false, true]);
    packed.add(views[3]!);
    expect(views.map((v) => packed.find(v) >= 0)).toEqual([true, false, true, true, true]);
  });

  it("findOrAddIn finds a digest added before (size unchanged) and adds one that is not, through growth and freed records", () => {
    const packed = new PackedRecords();
    const views = chunkOf(3000, 2);
    // Same first four bytes for a few: one probe run, so the probe must compare whole digests.
    for (const view of views.slice(0, 6)) view.set([9, 9, 9, 9]);
    const chunk = views[0]!;
    const offsetOf = (v: Uint8Array) => v.byteOffset - chunk.byteOffset;
    const whole = new Uint8Array(chunk.buffer, chunk.byteOffset);
    const added: number[] = [];
    for (const view of views) {
      const before = packed.size;
      added.push(packed.findOrAddIn(whole, offsetOf(view), view.length));
      expect(packed.size).toBe(before + 1);
    }
    expect(new Set(added).size).toBe(views.length);
    for (const [i, view] of views.entries()) {
      expect(packed.findOrAddIn(whole, offsetOf(view), view.length)).toBe(added[i]);
      expect(Buffer.from(packed.viewOf(added[i]!)).equals(Buffer.from(view))).toBe(true);
    }
    expect(packed.size).toBe(views.length);
    // A deleted digest is added again, into a freed record; the others stay found.
    expect(packed.delete(views[1]!)).toBe(added[1]);
    expect(packed.find(views[1]!)).toBe(-1);
    const again = packed.findOrAddIn(whole, offsetOf(views[1]!), views[1]!.length);
    expect(again).toBe(added[1]);
    expect(packed.size).toBe(views.length);
    for (const [i, view] of views.slice(0, 6).entries()) expect(packed.find(view)).toBe(added[i]);
  });

  it("lets a buffer go once no record points into it; replace() moves a record to another", () => {
    const packed = new PackedRecords();
    const [a, b] = [chunkOf(3, 1), chunkOf(3, 2)];
    for (const view of [...a!, ...b!]) packed.add(view);
    expect(packed.buffersKept).toBe(2);
    for (const view of a!) packed.delete(view);
    expect(packed.buffersKept).toBe(1);
    const moved = new Uint8Array(b![0]!); // the same digest and bytes in a buffer of its own
    packed.replace(packed.find(b![0]!), moved);
    expect(packed.buffersKept).toBe(2);
    expect(packed.viewOf(packed.find(moved)).buffer).toBe(moved.buffer);
  });
});
