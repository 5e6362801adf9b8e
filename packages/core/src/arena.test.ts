import { describe, expect, it } from "vitest";
import { ByteArena } from "./arena.js";

describe("ByteArena", () => {
  it("returns copies that later copies and changes to the input do not touch", () => {
    const arena = new ByteArena();
    const input = Uint8Array.from([1, 2, 3]);
    const copies = Array.from({ length: 20_000 }, (_, i) => {
      input[0] = i & 0xff;
      return arena.copy(input.subarray(0, 1 + (i % 3)));
    });
    input.fill(0);
    copies.forEach((c, i) => expect([...c]).toEqual([i & 0xff, 2, 3].slice(0, 1 + (i % 3))));
  });
  it("packs small copies into shared chunks and gives large ones their own buffer", () => {
    const arena = new ByteArena();
    const a = arena.copy(new Uint8Array(100));
    const b = arena.copy(new Uint8Array(100));
    expect(a.buffer).toBe(b.buffer);
    const big = arena.copy(new Uint8Array(1 << 20));
    expect(big.byteOffset).toBe(0);
    expect(big.buffer.byteLength).toBe(1 << 20);
    expect(arena.copy(new Uint8Array(0)).length).toBe(0);
  });
  it("starts with a small chunk and doubles up to the chunk size, so a small upload holds little", () => {
    const arena = new ByteArena(64 * 1024);
    const first = arena.copy(new Uint8Array(100));
    expect(first.buffer.byteLength).toBe(4096);
    const sizes = new Set<number>([first.buffer.byteLength]);
    for (let i = 0; i < 2000; i++) sizes.add(arena.copy(new Uint8Array(1000)).buffer.byteLength);
    expect([...sizes]).toEqual([4096, 8192, 16384, 32768, 65536]);
  });
});
