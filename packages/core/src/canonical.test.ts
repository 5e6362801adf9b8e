import { describe, expect, it } from "vitest";
import { toBinary, fromBinary } from "@bufbuild/protobuf";
import { DirectorySchema } from "@castore-ts/proto";
import fc from "fast-check";
import { ScratchEncoder, decodeDirectory, directoryDigest, encodeDirectory, DecodeError } from "./canonical.js";
import { Digest } from "./digest.js";
import { ValidationError } from "./errors.js";
import { DIRECTORY_A, DIRECTORY_B, DIRECTORY_COMPLICATED, DIRECTORY_D } from "./fixtures.js";
import { makeDirectory, makeDirectoryNode, makeFileNode, makeSymlinkNode } from "./model.js";
import { validateDirectory } from "./validate.js";
import { arbitraryDirectory } from "./test-arbitraries.js";

describe("pinned digests (spec §7)", () => {
  it("A, the empty directory, encodes to zero bytes and hashes to BLAKE3('')", () => {
    expect(encodeDirectory(DIRECTORY_A).length).toBe(0);
    expect(directoryDigest(DIRECTORY_A).hex).toBe("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  });
  it("B = {dir a -> A}", () => {
    expect(directoryDigest(DIRECTORY_B).hex).toBe("8701f4722d8dae7f2c40fa003331b8437a3825f9e1bfd3a77998c64cc226b9cc");
  });
});

describe("canonical encoding", () => {
  it("matches protobuf-es toBinary byte for byte on the fixtures", () => {
    for (const d of [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D, DIRECTORY_COMPLICATED]) {
      expect(encodeDirectory(d)).toEqual(toBinary(DirectorySchema, d));
    }
  });

  it("matches toBinary, and decodes back, for random valid directories", () => {
    fc.assert(
      fc.property(arbitraryDirectory(), (d) => {
        const bytes = encodeDirectory(d);
        expect(Buffer.from(bytes)).toEqual(Buffer.from(toBinary(DirectorySchema, d)));
        const back = decodeDirectory(bytes);
        validateDirectory(back);
        expect(Buffer.from(encodeDirectory(back))).toEqual(Buffer.from(bytes));
        expect(directoryDigest(back).equals(Digest.of(bytes))).toBe(true);
        // protobuf-es reads our bytes to the same message
        expect(Buffer.from(toBinary(DirectorySchema, fromBinary(DirectorySchema, bytes)))).toEqual(Buffer.from(bytes));
      }),
      { numRuns: 300 },
    );
  });

  it("ScratchEncoder writes the same bytes as encodeDirectory, growing its buffer when needed", () => {
    const scratch = new ScratchEncoder();
    // 300 files of ~40 bytes each outgrow the initial 4 KiB buffer.
    const big = makeDirectory({
      files: Array.from({ length: 300 }, (_, i) =>
        makeFileNode(`file-${String(i).padStart(3, "0")}`, new Uint8Array(32), i + 1),
      ),
    });
    expect(Buffer.from(scratch.encode(big))).toEqual(Buffer.from(encodeDirectory(big)));
    fc.assert(
      fc.property(arbitraryDirectory(), (d) => {
        expect(Buffer.from(scratch.encode(d))).toEqual(Buffer.from(encodeDirectory(d)));
      }),
      { numRuns: 200 },
    );
  });

  it("large sizes use full 64-bit varints", () => {
    const d = makeDirectory({ files: [makeFileNode("f", new Uint8Array(32), 0xffffffffffffffffn, true)] });
    const bytes = encodeDirectory(d);
    expect(Buffer.from(bytes)).toEqual(Buffer.from(toBinary(DirectorySchema, d)));
    expect(decodeDirectory(bytes).files[0].size).toBe(0xffffffffffffffffn);
  });

  it("a size that is not a uint64 has no encoding: ValidationError naming the node", () => {
    for (const size of [-1n, -200n, 2n ** 64n]) {
      const withFile = makeDirectory({ files: [makeFileNode("f", new Uint8Array(32), size)] });
      expect(() => encodeDirectory(withFile)).toThrow(ValidationError);
      expect(() => encodeDirectory(withFile)).toThrow(new RegExp(`invalid size ${size} in files\\[0\\] "f"`));
      expect(() => new ScratchEncoder().encode(withFile)).toThrow(ValidationError);
      const withDir = makeDirectory({ directories: [makeDirectoryNode("d", new Uint8Array(32), size)] });
      expect(() => encodeDirectory(withDir)).toThrow(new RegExp(`invalid size ${size} in directories\\[0\\] "d"`));
    }
  });

  it("a varint above 2^64-1 is rejected as malformed, not truncated", () => {
    const node = (size: number[]) => [0x0a, 0x01, 0x66, 0x12, 32, ...new Array(32).fill(7), 0x18, ...size];
    for (const size of [
      [...Array(9).fill(0xff), 0x02],
      [...Array(9).fill(0x80), 0x04],
      [...Array(10).fill(0xff), 0x01],
    ]) {
      const bytes = Uint8Array.from([0x12, node(size).length, ...node(size)]);
      expect(() => decodeDirectory(bytes)).toThrow(expect.objectContaining({ malformed: true }));
    }
    const max = node([...Array(9).fill(0xff), 0x01]);
    expect(decodeDirectory(Uint8Array.from([0x12, max.length, ...max])).files[0].size).toBe(2n ** 64n - 1n);
  });

  it("single-byte mutations of a valid encoding are rejected or hash differently", () => {
    fc.assert(
      fc.property(
        arbitraryDirectory().filter((d) => encodeDirectory(d).length > 0),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (d, at, xor) => {
          const bytes = encodeDirectory(d);
          const original = Digest.of(bytes);
          const mutated = Uint8Array.from(bytes);
          mutated[at % mutated.length] ^= xor;
          let decoded;
          try {
            decoded = decodeDirectory(mutated);
            validateDirectory(decoded);
          } catch {
            return; // rejected
          }
          expect(directoryDigest(decoded).equals(original)).toBe(false);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("strict decoding rejects non-canonical input", () => {
  const name = (s: string) => Buffer.from(s);
  // [what, bytes, the reason the error must give, whether the bytes are not protobuf at all]
  const cases: [string, number[], RegExp, boolean][] = [
    ["unknown top-level field", [0x22, 0x00], /unknown field 4 at byte 1/, false],
    ["unknown field in a node", [0x0a, 0x02, 0x28, 0x01], /unknown field 5 at byte 3/, false],
    ["wrong wire type for directories", [0x08, 0x01], /field 1 has wire type 0, expected 2/, false],
    [
      "fields out of order",
      [0x12, 0x03, 0x0a, 0x01, 0x66, 0x0a, 0x03, 0x0a, 0x01, 0x67],
      /field 1 after field 2/,
      false,
    ],
    [
      "node fields out of order",
      [0x0a, 0x06, 0x18, 0x01, 0x0a, 0x01, 0x61, 0x00],
      /field 1 out of order or repeated/,
      false,
    ],
    ["empty bytes written", [0x1a, 0x02, 0x0a, 0x00], /empty bytes field written/, false],
    ["zero size written", [0x0a, 0x05, 0x0a, 0x01, 0x61, 0x18, 0x00], /zero uint64 written/, false],
    ["non-minimal varint length", [0x1a, 0x83, 0x00, 0x0a, 0x01, 0x61], /non-minimal varint at byte 1/, false],
    ["executable=false written", [0x12, 0x05, 0x0a, 0x01, 0x61, 0x20, 0x00], /bool field 4 is 0/, false],
    ["executable=2", [0x12, 0x05, 0x0a, 0x01, 0x61, 0x20, 0x02], /bool field 4 is 2/, false],
    ["truncated", [0x0a, 0x05, 0x0a, 0x01], /length 5 runs past the end/, true],
    [
      "repeated field inside a node",
      [0x1a, 0x06, 0x0a, 0x01, 0x61, 0x0a, 0x01, 0x62],
      /field 1 out of order or repeated at byte 6/,
      false,
    ],
  ];
  for (const [what, bytes, reason, malformed] of cases) {
    it(what, () => {
      const error = (() => {
        try {
          decodeDirectory(Uint8Array.from(bytes));
        } catch (e) {
          return e;
        }
        throw new Error("decoded");
      })();
      expect(error).toBeInstanceOf(DecodeError);
      expect((error as DecodeError).message).toMatch(reason);
      expect((error as DecodeError).malformed).toBe(malformed);
    });
  }

  it("protobuf-es-style encodings with unknown fields are rejected", () => {
    const d = makeDirectory({ symlinks: [makeSymlinkNode(name("a"), name("b"))] });
    const bytes = [...encodeDirectory(d), 0x78, 0x01]; // field 15 varint
    expect(() => decodeDirectory(Uint8Array.from(bytes))).toThrow(/unknown field 15/);
  });

  it("a DirectoryNode round-trips", () => {
    const d = makeDirectory({ directories: [makeDirectoryNode("x", Digest.of(new Uint8Array()), 7)] });
    expect(decodeDirectory(encodeDirectory(d))).toEqual(d);
  });
});
