import { CorruptionError, Digest, RootToLeavesChecker, decodeDirectory } from "@castore-ts/core";
import { generateTree } from "@castore-ts/conformance";
import { describe, expect, it } from "vitest";
import {
  CLOSURE_MAGIC,
  FRAME_PREFIX_LENGTH,
  decodeIndex,
  encodeIndex,
  layoutClosure,
  readFrames,
} from "./closure-format.js";
import { randomDag, validated } from "./test-trees.js";

/** The frames of a closure object's bytes, with offsets. */
function frames(body: Uint8Array): { offset: number; bytes: Uint8Array; hex: string }[] {
  const buf = Buffer.from(body);
  expect(buf.subarray(0, CLOSURE_MAGIC.length).equals(CLOSURE_MAGIC)).toBe(true);
  const out = [];
  for (let at = CLOSURE_MAGIC.length; at < buf.length;) {
    const len = buf.readUInt32BE(at);
    const bytes = buf.subarray(at + FRAME_PREFIX_LENGTH, at + FRAME_PREFIX_LENGTH + len);
    out.push({ offset: at, bytes, hex: Digest.of(bytes).hex });
    at += FRAME_PREFIX_LENGTH + len;
  }
  return out;
}

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

describe("layoutClosure", () => {
  it("frames every directory once, root first, each after every directory referring to it", () => {
    const dag = randomDag(300, 3);
    const closure = validated(dag.directories);
    const { body, order } = layoutClosure(closure.entries, closure.root);
    const fs = frames(body);
    expect(fs.length).toBe(dag.directories.length);
    expect(fs[0].hex).toBe(dag.root.hex);
    expect(new Set(fs.map((f) => f.hex)).size).toBe(fs.length);
    expect(order.map((e) => e.digest.hex)).toEqual(fs.map((f) => f.hex));
    const position = new Map(fs.map((f, i) => [f.hex, i]));
    for (const f of fs) {
      for (const child of decodeDirectory(f.bytes).directories) {
        expect(position.get(Buffer.from(child.digest).toString("hex"))!).toBeGreaterThan(position.get(f.hex)!);
      }
    }
    // Strictly root to leaves: RootToLeavesChecker accepts the whole object in order.
    const checker = new RootToLeavesChecker(dag.root);
    for (const f of fs) checker.accept(decodeDirectory(f.bytes), f.bytes);
    checker.finish();
  });

  it("gives every directory a span that holds its whole sub-closure (DAG with shared subtrees)", () => {
    const dag = randomDag(300, 5);
    const closure = validated(dag.directories);
    const { body, placements } = layoutClosure(closure.entries, closure.root);
    const fs = frames(body);
    for (const d of dag.digests) {
      const p = placements.get(d.hex)!;
      expect(fs.find((f) => f.offset === p.offset)!.hex).toBe(d.hex);
      const inSpan = new Set(fs.filter((f) => f.offset >= p.offset && f.offset < p.end).map((f) => f.hex));
      for (const member of dag.closureOf(d.hex)) expect(inSpan.has(member)).toBe(true);
      // The span ends exactly with a frame of the sub-closure.
      const last = fs.filter((f) => f.offset < p.end).at(-1)!;
      expect(last.offset + FRAME_PREFIX_LENGTH + last.bytes.length).toBe(p.end);
      expect(dag.closureOf(d.hex).has(last.hex)).toBe(true);
    }
  });

  it("makes every subtree of a tree contiguous (depth-first pre-order)", () => {
    const tree = generateTree({ directories: 2_000, seed: 11 });
    const closure = validated(tree.directories);
    const { body, placements } = layoutClosure(closure.entries, closure.root);
    const byHex = new Map(closure.entries.map((e) => [e.digest.hex, e]));
    const subtreeBytes = (hex: string): number => {
      const e = byHex.get(hex)!;
      let n = FRAME_PREFIX_LENGTH + e.bytes.length;
      for (const c of e.directory.directories) n += subtreeBytes(Buffer.from(c.digest).toString("hex"));
      return n;
    };
    for (const d of tree.digests) {
      const p = placements.get(d.hex)!;
      expect(p.end - p.offset).toBe(subtreeBytes(d.hex));
    }
    expect(placements.get(tree.root.hex)).toEqual({ offset: CLOSURE_MAGIC.length, end: body.length });
  });

  it("depends only on the closure, not on the upload order", () => {
    const dag = randomDag(100, 9);
    const a = validated(dag.directories);
    // Another valid leaves-to-root order: reverse Kahn from the root would do; here, re-sending duplicates first.
    const b = validated([...dag.directories.slice(0, 10), ...dag.directories]);
    expect(
      Buffer.from(layoutClosure(b.entries, b.root).body).equals(Buffer.from(layoutClosure(a.entries, a.root).body)),
    ).toBe(true);
    const shuffled = [...a.entries].reverse();
    expect(
      Buffer.from(layoutClosure(shuffled, a.root).body).equals(Buffer.from(layoutClosure(a.entries, a.root).body)),
    ).toBe(true);
  });
});

describe("index objects", () => {
  it("round-trip with and without a closure pointer", () => {
    const root = Digest.of(new Uint8Array([1]));
    const bytes = new Uint8Array([0x12, 0x00]);
    const withPointer = decodeIndex(root, encodeIndex({ closure: root, placement: { offset: 18, end: 40 }, bytes }));
    expect(withPointer.closure!.hex).toBe(root.hex);
    expect(withPointer.placement).toEqual({ offset: 18, end: 40 });
    expect(Buffer.from(withPointer.bytes)).toEqual(Buffer.from(bytes));
    const standalone = decodeIndex(root, encodeIndex({ placement: { offset: 0, end: 0 }, bytes }));
    expect(standalone.closure).toBeUndefined();
  });

  it("reject truncation, wrong magic and impossible spans as corruption", () => {
    const d = Digest.of(new Uint8Array([2]));
    const good = encodeIndex({ closure: d, placement: { offset: 18, end: 40 }, bytes: new Uint8Array(4) });
    expect(() => decodeIndex(d, good.subarray(0, 20))).toThrow(CorruptionError);
    const wrongMagic = Uint8Array.from(good);
    wrongMagic[0] ^= 1;
    expect(() => decodeIndex(d, wrongMagic)).toThrow(/wrong magic/);
    expect(() =>
      decodeIndex(d, encodeIndex({ closure: d, placement: { offset: 18, end: 20 }, bytes: new Uint8Array(4) })),
    ).toThrow(/impossible span/);
  });
});

describe("readFrames", () => {
  const tree = generateTree({ directories: 500, seed: 2 });
  const closure = validated(tree.directories);
  const { body } = layoutClosure(closure.entries, closure.root);
  const span = body.subarray(CLOSURE_MAGIC.length);

  it.each([1, 3, 7, 64, 4096, 1 << 20])("splits a stream of %i-byte chunks into the frames", async (size) => {
    const got: string[] = [];
    for await (const f of readFrames(chunked(span, size), span.length, () => "test")) got.push(Digest.of(f).hex);
    expect(got).toEqual(frames(body).map((f) => f.hex));
  });

  it("yields the empty directory's zero-length frame", async () => {
    const got: Uint8Array[] = [];
    for await (const f of readFrames(chunked(new Uint8Array(8), 3), 8, () => "test")) got.push(f);
    expect(got.map((f) => f.length)).toEqual([0, 0]);
  });

  it("reports a truncated stream, a frame past the span and extra bytes as corruption", async () => {
    const drain = async (chunks: AsyncIterable<Uint8Array>, length: number) => {
      for await (const _ of readFrames(chunks, length, () => "object x")) void _;
    };
    await expect(drain(chunked(span.subarray(0, span.length - 5), 100), span.length)).rejects.toThrow(/truncated/);
    await expect(drain(chunked(span, 100), span.length - 5)).rejects.toThrow(CorruptionError);
    const huge = new Uint8Array(8);
    new DataView(huge.buffer).setUint32(0, 0xfffffff0);
    await expect(drain(chunked(huge, 8), 8)).rejects.toThrow(/past the end/);
  });
});
