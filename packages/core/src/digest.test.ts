import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Digest, digestKey, digestKeyBytes, isDigest, requireDigest, requireDigests } from "./digest.js";
import { InvalidDigest } from "./errors.js";
import { blake3 } from "./hash.js";

const HEX = "8701f4722d8dae7f2c40fa003331b8437a3825f9e1bfd3a77998c64cc226b9cc";

describe("Digest text forms", () => {
  it("parses lowercase and uppercase hex; formats lowercase", () => {
    expect(Digest.parse(HEX).toString()).toBe(HEX);
    expect(Digest.parse(HEX.toUpperCase()).hex).toBe(HEX);
  });
  it("parses b3: base64, padded and unpadded, and formats padded", () => {
    const d = Digest.parse(HEX);
    const b3 = d.toB3();
    expect(b3).toMatch(/^b3:[A-Za-z0-9+/]{43}=$/);
    expect(Digest.parse(b3).equals(d)).toBe(true);
    expect(Digest.parse(b3.slice(0, -1)).equals(d)).toBe(true);
  });
  it("round-trips any 32 bytes through both forms", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => {
        const d = Digest.fromBytes(b);
        expect(Digest.parse(d.hex).equals(d)).toBe(true);
        expect(Digest.parse(d.toB3()).equals(d)).toBe(true);
      }),
    );
  });
  const bad = [
    "",
    HEX.slice(1),
    HEX + "0",
    HEX.slice(0, 63) + "g",
    `sha256:${HEX}`,
    "b3:",
    "b3:AAAA",
    "b3:" + "A".repeat(44),
    "b3:" + "A".repeat(42) + "B", // non-zero padding bits
    "b3:" + "A".repeat(42) + "-=",
    " " + HEX,
    "B3:" + Digest.parse(HEX).toB3().slice(3),
  ];
  for (const text of bad) {
    it(`rejects ${JSON.stringify(text.slice(0, 20))}… with InvalidDigest naming the input`, () => {
      expect(() => Digest.parse(text)).toThrow(InvalidDigest);
      expect(() => Digest.parse(text)).toThrow(JSON.stringify(text).slice(0, 10));
    });
  }
  it("rejects wrong byte lengths", () => {
    expect(() => Digest.fromBytes(new Uint8Array(31))).toThrow(/expected 32 bytes, got 31/);
  });
  it("copies its input", () => {
    const b = new Uint8Array(32);
    const d = Digest.fromBytes(b);
    b[0] = 1;
    expect(d.bytes[0]).toBe(0);
  });
});

describe("blake3 (one-shot, small inputs)", () => {
  it("returns a plain 32-byte Uint8Array per call that later calls do not overwrite", () => {
    const empty = blake3(new Uint8Array(0));
    const others = Array.from({ length: 1000 }, (_, i) => blake3(Uint8Array.of(i & 0xff, i >> 8)));
    expect(Buffer.isBuffer(empty)).toBe(false);
    expect(empty).toHaveLength(32);
    expect(Buffer.from(empty).toString("hex")).toBe("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    expect(new Set(others.map((d) => Buffer.from(d).toString("hex"))).size).toBe(1000);
    expect(Buffer.from(others[0])).toEqual(Buffer.from(blake3(Uint8Array.of(0, 0))));
  });
});

describe("digestKey", () => {
  it("is distinct for distinct digests and digestKeyBytes gives the bytes back", () => {
    const digests = Array.from({ length: 300 }, (_, i) => blake3(Uint8Array.of(i & 0xff, i >> 8)));
    digests.push(new Uint8Array(32), new Uint8Array(32).fill(0xff));
    const keys = digests.map(digestKey);
    expect(new Set(keys).size).toBe(digests.length);
    for (let i = 0; i < digests.length; i++) expect(digestKeyBytes(keys[i])).toEqual(new Uint8Array(digests[i]));
  });
});

describe("requireDigest: a caller's argument that is not a Digest", () => {
  const d = Digest.of(new Uint8Array(0));
  it("accepts a Digest, and one of the same shape from another copy of the package", () => {
    expect(() => requireDigest(d, "get(): digest")).not.toThrow();
    const bytes = new Uint8Array(32);
    expect(isDigest({ bytes, equals: () => false, hex: "00".repeat(32) })).toBe(true);
    // Stores key objects by hex: a look-alike whose hex is not its bytes' is not a digest.
    expect(isDigest({ bytes, equals: () => false, hex: "../../etc" })).toBe(false);
    expect(isDigest({ bytes, equals: () => false })).toBe(false);
  });
  it.each([
    ["a hex string", d.hex, "get(): digest is a string, not a Digest"],
    ["raw bytes", d.bytes, "get(): digest is a Uint8Array of 32 bytes, not a Digest"],
    ["undefined", undefined, "get(): digest is undefined, not a Digest"],
    [
      "31 bytes in a look-alike",
      { bytes: new Uint8Array(31), equals: () => false, hex: "00".repeat(31) },
      "get(): digest is an object",
    ],
  ])("refuses %s with InvalidDigest naming the argument", (_what, value, message) => {
    expect(() => requireDigest(value, "get(): digest")).toThrow(InvalidDigest);
    expect(() => requireDigest(value, "get(): digest")).toThrow(message);
  });
  it("requireDigests wants an array, and names the element", () => {
    expect(() => requireDigests([d, d], "has(): digests")).not.toThrow();
    expect(() => requireDigests(d, "has(): digests")).toThrow("has(): digests is a Digest, not an array of Digests");
    expect(() => requireDigests([d, "x"], "has(): digests")).toThrow("has(): digests[1] is a string, not a Digest");
  });
});
