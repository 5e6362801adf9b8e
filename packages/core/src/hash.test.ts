import { describe, expect, it } from "vitest";
import { directoryDigest, encodeDirectory } from "./canonical.js";
import { DIGEST_LENGTH, hexOf } from "./digest.js";
import { blake3, createBlake3Hasher } from "./hash.js";
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
