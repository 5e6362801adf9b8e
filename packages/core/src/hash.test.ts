import { describe, expect, it } from "vitest";
import { directoryDigest, encodeDirectory } from "./canonical.js";
import { DIGEST_LENGTH, hexOf } from "./digest.js";
import { blake3, blake3Matches, createBlake3Hasher } from "./hash.js";
import { makeDirectory, makeFileNode } from "./model.js";
import { mapService } from "./test-memory-store.js";

/** BLAKE3's test-vector input: byte i is i % 251. */
function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = i % 251;
  return bytes;
}

// Expected digests computed with the b3sum binary (b3sum 1.2.0) over the same pattern files.
const KNOWN: [length: number, hex: string][] = [
  // also BLAKE3's published test vector for input_len 1024
  [1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"],
  [13_000_007, "6596f1aeea8de02e8cf4da9df1c16a1e44eca7a0cd06ef5074e71e7e3238d23a"],
  [64 * 2 ** 20 + 1029, "2780d40d4ba57a73a8b8c4d9dafb31908551ffae9be4f2f5426634e13fb7a8d6"],
];

// Also b3sum 1.2.0 over the pattern; 0, 1, 1023 and 1025 are BLAKE3's published vectors too.
// Up to 64 KiB blake3() calls the wasm one-shot hash directly; 65 537 is past that limit.
const SMALL: [length: number, hex: string][] = [
  [0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"],
  [1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"],
  [31, "bda80c7fe2db38be6387b35c870bd7728d67b7b6cc5eb9b0e5c7dcb21ea754c2"],
  [32, "e528e95798037df410543d9f31e396ecdd458d71b157d6014398bae32fb56c65"],
  [33, "4f4e6c1dffd3a6c9959876d15aa96b5fb0da8632b995f6ca2e30503f2829fa29"],
  [64, "4eed7141ea4a5cd4b788606bd23f46e212af9cacebacdc7d1f4c6dc7f2511b98"],
  [1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"],
  [1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"],
  [65535, "de7d0f4c044c56f56e0c5f7ab247be9491c4520e8688f0f0d25406f46fdfbd03"],
  [65536, "68d647e619a930e7b1082f74f334b0c65a315725569bdc123f0ee11881717bfe"],
  [65537, "7c99f9840a73dfcb6e5bfe4ff6d1558acab7e015640790c26411818bdbe17eca"],
];

describe("BLAKE3 of small inputs and around the one-shot limit", () => {
  it.each(SMALL)("blake3() of %i bytes is b3sum's digest, and blake3Matches() agrees", (length, hex) => {
    const input = pattern(length);
    expect(hexOf(blake3(input))).toBe(hex);
    const expected = Uint8Array.from(Buffer.from(hex, "hex"));
    expect(blake3Matches(input, expected)).toBe(true);
    expected[31] ^= 1;
    expect(blake3Matches(input, expected)).toBe(false);
  });

  it("a digest stays what it was when later hashes reuse the wasm memory it was computed in", () => {
    const first = blake3(pattern(1));
    const again = blake3(pattern(1025));
    blake3Matches(pattern(64), again);
    expect(hexOf(first)).toBe(SMALL[1][1]);
    expect(hexOf(again)).toBe(SMALL[7][1]);
  });

  it("blake3Matches() of an expected digest that is not 32 bytes is false", () => {
    const digest = blake3(pattern(33));
    expect(blake3Matches(pattern(33), digest.subarray(0, 31))).toBe(false);
    expect(blake3Matches(pattern(33), new Uint8Array([...digest, 0]))).toBe(false);
  });

  it("hashes a view (offset into a larger buffer) by its own bytes", () => {
    const big = pattern(2048);
    const view = big.subarray(1, 1 + 64);
    expect(hexOf(blake3(view))).toBe(hexOf(blake3(view.slice())));
  });
});

describe("BLAKE3 of large inputs", () => {
  for (const [length, hex] of KNOWN) {
    it(`blake3() of ${length} bytes is b3sum's digest`, () => {
      expect(hexOf(blake3(pattern(length)))).toBe(hex);
    });
    it(`createBlake3Hasher over ${length} bytes in uneven chunks is b3sum's digest`, () => {
      const input = pattern(length);
      const hasher = createBlake3Hasher();
      const step = 3 * 2 ** 20 + 17;
      for (let i = 0; i < input.length; i += step) hasher.update(input.subarray(i, i + step));
      expect(hexOf(hasher.digest())).toBe(hex);
    });
  }

  it("put and get of a valid 250 000-file directory (~13 MB encoded) round-trip", async () => {
    const digest = new Uint8Array(DIGEST_LENGTH).fill(7);
    const files = Array.from({ length: 250_000 }, (_, i) =>
      makeFileNode(`file-${String(i).padStart(7, "0")}`, digest, i),
    );
    const big = makeDirectory({ files });
    expect(encodeDirectory(big).length).toBeGreaterThan(13_000_000);
    const { service } = mapService();
    const root = await service.put(big);
    expect(root.equals(directoryDigest(big))).toBe(true);
    const got = await service.get(root);
    expect(got?.files).toHaveLength(250_000);
    expect(got?.files[249_999].size).toBe(249_999n);
  }, 60_000);
});
