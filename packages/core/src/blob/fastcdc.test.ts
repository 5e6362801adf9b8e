import { createHash } from "node:crypto";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createBlake3Hasher } from "../hash.js";
import {
  type ChunkingOptions,
  FastCdcChunker,
  GEAR_HEX,
  MASKS_HEX,
  SNIX_CHUNKING,
  findCutPoint,
  resolveChunking,
} from "./fastcdc.js";

// Expected values below are copied from the tests of the Rust crate `fastcdc`
// (nlfiedler/fastcdc-rs, src/v2020/mod.rs at commit f76938d8c2d7), which chunk
// its fixture test/fixtures/SekienAkashita.jpg (copied to ./testdata).
const SEKIEN = new Uint8Array(readFileSync(new URL("./testdata/SekienAkashita.jpg", import.meta.url)));

/** The crate's `cut()` loop from offset 0: (hash, length) per chunk, as its tests list them. */
function cutAll(data: Uint8Array, opts: ChunkingOptions): [bigint, number][] {
  const out: [bigint, number][] = [];
  let cursor = 0;
  while (cursor < data.length) {
    const { hash, length } = findCutPoint(data, cursor, data.length, opts);
    out.push([hash, length]);
    cursor += length;
  }
  return out;
}

function blake3Hex(bytes: Uint8Array): string {
  const hasher = createBlake3Hasher();
  hasher.update(bytes);
  return Buffer.from(hasher.digest()).toString("hex");
}

function streamAll(data: Uint8Array, opts: ChunkingOptions, pieceSizes: number[]): Uint8Array[] {
  const chunker = new FastCdcChunker(opts);
  const chunks: Uint8Array[] = [];
  let pos = 0;
  for (let k = 0; pos < data.length; k++) {
    const size = pieceSizes.length === 0 ? data.length : pieceSizes[k % pieceSizes.length];
    chunks.push(...chunker.push(data.subarray(pos, pos + size)));
    pos += size;
  }
  chunks.push(...chunker.finish());
  return chunks;
}

/** Deterministic pseudo-random bytes (xorshift32, the top byte of each step). */
function xorshiftBytes(seed: number, size: number): Uint8Array {
  const data = new Uint8Array(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x >>> 24;
  }
  return data;
}

const opts = (minSize: number, avgSize: number, maxSize: number, normalization?: 0 | 1 | 2 | 3): ChunkingOptions => ({
  minSize,
  avgSize,
  maxSize,
  normalization,
});

describe("tables and masks are the crate's", () => {
  it("GEAR is the MD5 derivation of the crate's table64.rs, and matches the crate's GEAR_LS when shifted", () => {
    for (let i = 0; i < 256; i++) {
      const md5 = createHash("md5").update(Buffer.alloc(64, i)).digest("hex");
      expect(GEAR_HEX[i]).toBe(md5.slice(0, 16));
    }
    // Entries of the crate's literal GEAR_LS table.
    const shifted = (i: number) => ((BigInt("0x" + GEAR_HEX[i]) << 1n) % (1n << 64n)).toString(16).padStart(16, "0");
    expect(shifted(0)).toBe("76ba78fa40fc6fb8");
    expect(shifted(128)).toBe("819c8ff11266c68c");
    expect(shifted(255)).toBe("557a56548a2a09c2");
  });

  const masksOf = (o: ChunkingOptions) => {
    const p = resolveChunking(o);
    return { s: p.maskS.toString(16), l: p.maskL.toString(16) };
  };

  it("test_masks: level 1 takes MASKS[bits + 1] below the average and MASKS[bits - 1] above", () => {
    expect(masksOf(opts(64, 256, 1024))).toEqual({ s: "19000353000", l: "18035100" }); // MASKS[9], MASKS[7]
    expect(masksOf(opts(8192, 16384, 32768))).toEqual({ s: "d90f03530000", l: "d90303530000" }); // [15], [13]
    expect(masksOf(opts(1_048_576, 4_194_304, 16_777_216))).toEqual({ s: "d93777537000", l: "d91767537000" }); // [23], [21]
  });

  it("test_logarithm2: the mask bucket is the rounded log2 of avgSize, not the floored one", () => {
    expect(masksOf(opts(1024, 1500, 4096))).toEqual(masksOf(opts(1024, 2048, 4096))); // log2 10.55 -> 11
    expect(masksOf(opts(4096, 12288, 65536))).toEqual(masksOf(opts(4096, 16384, 65536))); // 13.585 -> 14
    expect(masksOf(opts(4096, 24576, 65536))).toEqual(masksOf(opts(4096, 32768, 65536))); // 14.585 -> 15
    expect(masksOf(opts(1024, 1100, 4096))).toEqual(masksOf(opts(1024, 1024, 4096))); // 10.103 -> 10
  });

  it("levels 0 and 3 reach MASKS[5] and the ends of the table", () => {
    expect(masksOf(opts(64, 256, 1024, 3)).l).toBe(MASKS_HEX[5].replace(/^0+/, ""));
    expect(masksOf(opts(1_048_576, 4_194_304, 16_777_216, 3)).s).toBe(MASKS_HEX[25].replace(/^0+/, ""));
    expect(masksOf(opts(64, 256, 1024, 0))).toEqual({ s: "1800035300", l: "1800035300" }); // MASKS[8] twice
  });
});

describe("the crate's published cut points", () => {
  it("test_cut_all_zeros: maximum-size chunks, each with the same hash", () => {
    const zeros = new Uint8Array(10240);
    let cursor = 0;
    for (let k = 0; k < 10; k++) {
      const { hash, length } = findCutPoint(zeros, cursor, zeros.length, opts(64, 256, 1024));
      expect([hash, length]).toEqual([14169102344523991076n, 1024]);
      cursor += length;
    }
    expect(findCutPoint(zeros, cursor, zeros.length, opts(64, 256, 1024))).toEqual({ length: 0, hash: 0n });
  });

  it("test_cut_sekien_16k_chunks (4096 / 16384 / 65535)", () => {
    expect(cutAll(SEKIEN, opts(4096, 16384, 65535))).toEqual([
      [17968276318003433923n, 21325],
      [8197189939299398838n, 17140],
      [13019990849178155730n, 28084],
      [4509236223063678303n, 18217],
      [2504464741100432583n, 24700],
    ]);
  });

  it("test_cut_sekien_32k_chunks (8192 / 32768 / 131072)", () => {
    expect(cutAll(SEKIEN, opts(8192, 32768, 131072))).toEqual([
      [15733367461443853673n, 66549],
      [6321136627705800457n, 42917],
    ]);
  });

  it("test_cut_sekien_64k_chunks (16384 / 65536 / 262144): the whole file, cut by end of data", () => {
    expect(cutAll(SEKIEN, opts(16384, 65536, 262144))).toEqual([[2504464741100432583n, 109466]]);
  });

  it("test_cut_sekien_16k_nc_0 (normalization level 0)", () => {
    expect(cutAll(SEKIEN, opts(4096, 16384, 65535, 0))).toEqual([
      [443122261039895162n, 6634],
      [15733367461443853673n, 59915],
      [10460176299449652894n, 25597],
      [6197802202431009942n, 5237],
      [6321136627705800457n, 12083],
    ]);
  });

  it("test_cut_sekien_16k_nc_3 (normalization level 3, 8192 / 16384 / 32768)", () => {
    expect(cutAll(SEKIEN, opts(8192, 16384, 32768, 3))).toEqual([
      [10718006254707412376n, 17350],
      [13104072099671895560n, 19911],
      [12322483109039221194n, 17426],
      [16009206469796846404n, 17519],
      [2473608525189754172n, 19940],
      [2504464741100432583n, 17320],
    ]);
  });

  // test_iter_sekien_16k_chunks and test_stream_sekien_16k_chunks: the same
  // chunks, identified by the BLAKE3 digests of their bytes.
  const SEKIEN_16K_DIGESTS = [
    "261930e84e14c240210ae8c459acc4bb85dd52f1b91c868f2106dbc1ceb3acca",
    "a01747cf21202f0068b8897d2be92aa4479b7ac7207b3baa5057b8ec75fa1c10",
    "01e5305fb8f54d214ed2946843ea360fb9bb3f5df66ef3e34fb024d32ebcaee1",
    "fc28c67b6ef846a841452a215bf704058f65cba5c1d78160398d3c2e046642f9",
    "f6996300fce24d3da56c81ea52e5f4f461ce6adb4496f65252996e1082471aac",
  ];

  it.each([[[]], [[1]], [[7, 4096]], [[65534]], [[65535]], [[65536]], [[100_000, 3]]])(
    "test_stream_sekien_16k_chunks: streaming in pieces of %j gives the crate's chunk digests",
    (pieceSizes) => {
      const chunks = streamAll(SEKIEN, opts(4096, 16384, 65535), pieceSizes);
      expect(chunks.map(blake3Hex)).toEqual(SEKIEN_16K_DIGESTS);
    },
  );

  it("test_fastcdc_covers_every_byte: contiguous non-empty chunks over edge-case sources", () => {
    const cases = [new Uint8Array(0), new Uint8Array(10), new Uint8Array(50_000), SEKIEN, SEKIEN.subarray(0, 4096)];
    for (const source of cases) {
      const lengths = cutAll(source, opts(4096, 16384, 65535)).map(([, length]) => length);
      expect(lengths.every((length) => length > 0)).toBe(true);
      expect(lengths.reduce((a, b) => a + b, 0)).toBe(source.length);
      const streamed = streamAll(source, opts(4096, 16384, 65535), [999]);
      expect(streamed.map((c) => c.length)).toEqual(lengths);
    }
  });
});

// A literal BigInt transcription of the crate's cut_gear (two bytes a round,
// GEAR_LS for the first), to check the split-word scan on inputs no published
// vector covers: every size, level and offset parity.
const M64 = (1n << 64n) - 1n;
const GEAR = GEAR_HEX.map((h) => BigInt("0x" + h));
const GEAR_LS = GEAR.map((g) => (g << 1n) & M64);
function crateCut(source: Uint8Array, o: ChunkingOptions): [bigint, number] {
  const level = o.normalization ?? 1;
  const bits = Math.round(Math.log2(o.avgSize));
  const maskS = BigInt("0x" + MASKS_HEX[bits + level]);
  const maskL = BigInt("0x" + MASKS_HEX[bits - level]);
  let remaining = source.length;
  if (remaining <= o.minSize) return [0n, remaining];
  let center = o.avgSize;
  if (remaining > o.maxSize) remaining = o.maxSize;
  else if (remaining < center) center = remaining;
  const limit1 = Math.floor(center / 2);
  const limit2 = Math.floor(remaining / 2);
  let index = Math.floor(o.minSize / 2);
  let hash = 0n;
  for (const [limit, mask] of [
    [limit1, maskS],
    [limit2, maskL],
  ] as const) {
    for (; index < limit; index++) {
      const a = index * 2;
      hash = ((hash << 2n) + GEAR_LS[source[a]]) & M64;
      if ((hash & (mask << 1n)) === 0n) return [hash, a];
      hash = (hash + GEAR[source[a + 1]]) & M64;
      if ((hash & mask) === 0n) return [hash, a + 1];
    }
  }
  return [hash, remaining];
}

const arbitraryOptions: fc.Arbitrary<ChunkingOptions> = fc
  .record({
    minSize: fc.constantFrom(64, 65, 100, 255, 256, 700),
    avgSize: fc.constantFrom(256, 300, 383, 512, 1000, 1500, 2048),
    maxSize: fc.constantFrom(1024, 1025, 1500, 3000),
    normalization: fc.constantFrom(0, 1, 2, 3, undefined),
  })
  .map(({ minSize, avgSize, maxSize, normalization }) => {
    const avg = Math.max(minSize, avgSize);
    return { minSize, avgSize: avg, maxSize: Math.max(avg, maxSize), normalization } as ChunkingOptions;
  });

// Random bytes cut often; bytes from a two-letter alphabet make long runs
// that hit maxSize and the end-of-data paths. size "max": fast-check's default
// size would keep the arrays under ~10 bytes, below every minSize.
const arbitraryData = fc.oneof(
  fc.uint8Array({ maxLength: 12_000, size: "max" }),
  fc.uint8Array({ maxLength: 12_000, max: 1, size: "max" }),
);

describe("against a literal transcription of the crate's loop", () => {
  it("findCutPoint gives the crate's length and hash for random data and options", () => {
    fc.assert(
      fc.property(arbitraryData, arbitraryOptions, (data, o) => {
        let cursor = 0;
        while (cursor < data.length) {
          const got = findCutPoint(data, cursor, data.length, o);
          const [hash, length] = crateCut(data.subarray(cursor), o);
          expect(got).toEqual({ length, hash });
          cursor += length;
        }
      }),
      { numRuns: 150 },
    );
  });

  it("never hashes the last byte of an odd tail (the crate hashes whole pairs only)", () => {
    // Found by search: here the hash at the tail's unpaired last byte passes the mask.
    const source = SEKIEN.subarray(0, 1397);
    const lengths = cutAll(source, opts(64, 256, 1024)).map(([, length]) => length);
    expect(lengths).toEqual([216, 354, 263, 455, 109]);
    expect(findCutPoint(source, 1288, 1397, opts(64, 256, 1024))).toEqual({
      length: 109,
      hash: crateCut(source.subarray(1288), opts(64, 256, 1024))[0],
    });
  });

  it("reads nothing outside [offset, end)", () => {
    const data = new Uint8Array(8000).map((_, i) => (i * 2654435761) >>> 24);
    const o = opts(64, 256, 1024);
    const inner = data.slice(1000, 5000);
    let cursor = 0;
    while (cursor < inner.length) {
      const got = findCutPoint(data, 1000 + cursor, 5000, o);
      expect(got).toEqual(findCutPoint(inner, cursor, inner.length, o));
      cursor += got.length;
    }
  });
});

describe("FastCdcChunker", () => {
  it("gives the one-shot boundaries whatever the piece sizes", () => {
    fc.assert(
      fc.property(
        arbitraryData,
        arbitraryOptions,
        fc.array(fc.integer({ min: 1, max: 5000 }), { maxLength: 8 }),
        (data, o, pieceSizes) => {
          const expected = cutAll(data, o).map(([, length]) => length);
          const chunks = streamAll(data, o, pieceSizes);
          expect(chunks.map((c) => c.length)).toEqual(expected);
          expect(Buffer.concat(chunks).equals(data)).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("with the default SNIX_CHUNKING, matches one-shot over 3 MiB and keeps chunks within min..max", () => {
    expect(SNIX_CHUNKING).toEqual({ minSize: 131072, avgSize: 262144, maxSize: 524288, normalization: 1 });
    expect(Object.isFrozen(SNIX_CHUNKING)).toBe(true);
    const data = xorshiftBytes(0x9e3779b9, 3 * 1024 * 1024);
    const expected = cutAll(data, SNIX_CHUNKING).map(([, length]) => length);
    expect(expected.length).toBeGreaterThan(4);
    expect(expected.slice(0, -1).every((l) => l >= 131072 && l <= 524288)).toBe(true);
    const chunker = new FastCdcChunker();
    const chunks: Uint8Array[] = [];
    for (let pos = 0; pos < data.length; pos += 65536) chunks.push(...chunker.push(data.subarray(pos, pos + 65536)));
    chunks.push(...chunker.finish());
    expect(chunks.map((c) => c.length)).toEqual(expected);
  });

  it("matches one-shot past its 4 MiB window, with pieces from 1 byte to larger than the window", () => {
    const data = xorshiftBytes(0x2545f491, 11 * 1024 * 1024);
    const expected = cutAll(data, SNIX_CHUNKING).map(([, length]) => length);
    const sizes = [1, 5 * 1024 * 1024, 3, 524_287, 524_289, 4 * 1024 * 1024, 65_536];
    const chunks = streamAll(data, SNIX_CHUNKING, sizes);
    expect(chunks.map((c) => c.length)).toEqual(expected);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    // Each chunk owns exactly its bytes: a store may keep it without pinning a larger buffer.
    expect(chunks.every((c) => c.byteOffset === 0 && c.buffer.byteLength === c.length)).toBe(true);
    expect(new Set(chunks.map((c) => c.buffer)).size).toBe(chunks.length);
  });

  it("returns copies: overwriting a pushed piece afterwards changes no chunk", () => {
    const chunker = new FastCdcChunker(opts(64, 256, 1024));
    const piece = SEKIEN.slice(0, 5000);
    const chunks = chunker.push(piece);
    expect(chunks.length).toBeGreaterThan(0);
    const before = chunks.map(blake3Hex);
    const rest = chunker.finish();
    piece.fill(0);
    expect(chunks.map(blake3Hex)).toEqual(before);
    expect(Buffer.concat([...chunks, ...rest]).equals(SEKIEN.subarray(0, 5000))).toBe(true);
  });

  it("finish() empties the chunker for a new stream", () => {
    const chunker = new FastCdcChunker(opts(4096, 16384, 65535));
    chunker.push(SEKIEN.subarray(0, 30_000));
    expect(chunker.finish().reduce((n, c) => n + c.length, 0)).toBe(30_000);
    expect(chunker.finish()).toEqual([]);
    const again = [...chunker.push(SEKIEN), ...chunker.finish()];
    expect(again.map((c) => c.length)).toEqual([21325, 17140, 28084, 18217, 24700]);
  });
});

describe("option checks (the crate's MINIMUM/AVERAGE/MAXIMUM limits)", () => {
  it.each([
    ["minSize", opts(63, 256, 1024)],
    ["minSize", opts(67_108_867, 268_435_457, 1_073_741_825)],
    ["minSize", opts(1_048_577, 2_000_000, 4_000_000)],
    ["avgSize", opts(64, 255, 1024)],
    ["avgSize", opts(64, 268_435_457, 1024)],
    ["maxSize", opts(64, 256, 1023)],
    ["maxSize", opts(64, 256, 1_073_741_825)],
    ["maxSize", opts(64, 256, 16_777_217)],
    ["minSize", opts(64.5, 256, 1024)],
    ["avgSize", opts(4096, 2048, 65536)],
    ["avgSize", opts(64, 4096, 2048)],
    ["normalization", { ...opts(64, 256, 1024), normalization: 4 as 3 }],
  ])("rejects a bad %s with a RangeError naming it", (name, o) => {
    expect(() => new FastCdcChunker(o)).toThrow(RangeError);
    expect(() => new FastCdcChunker(o)).toThrow(`ChunkingOptions.${name}`);
    expect(() => findCutPoint(new Uint8Array(10), 0, 10, o)).toThrow(`ChunkingOptions.${name}`);
  });

  it("accepts the limits themselves", () => {
    expect(() => resolveChunking(opts(64, 256, 1024, 3))).not.toThrow();
    expect(() => resolveChunking(opts(1_048_576, 4_194_304, 16_777_216, 3))).not.toThrow();
  });

  it("rejects offsets outside the data", () => {
    const data = new Uint8Array(100);
    expect(() => findCutPoint(data, -1, 100, SNIX_CHUNKING)).toThrow(RangeError);
    expect(() => findCutPoint(data, 50, 40, SNIX_CHUNKING)).toThrow(RangeError);
    expect(() => findCutPoint(data, 0, 101, SNIX_CHUNKING)).toThrow(RangeError);
  });
});

describe("the scan module", () => {
  it("fastcdc-wasm.ts is the assembly of fastcdc.wat as committed", () => {
    const script = new URL("../../scripts/build-fastcdc-wasm.mjs", import.meta.url);
    const run = spawnSync(process.execPath, [fileURLToPath(script), "--check"], { encoding: "utf8" });
    expect(run.stderr).toBe("");
    expect(run.status).toBe(0);
  });
});
