/**
 * escapeName (how ls and get print names) and unescapeName (how a PATH
 * argument is read) are inverses over arbitrary bytes, and distinct names
 * never print the same.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { MESSAGE_PATH_BYTES, abbreviatePath, escapeName, unescapeName } from "./names.js";

const utf8 = (s: string) => new Uint8Array(Buffer.from(s, "utf8"));
const BOM = [0xef, 0xbb, 0xbf];

/**
 * Byte strings built from pieces that exercise every branch of the printer:
 * random bytes (mostly invalid UTF-8), encoded text of any code point,
 * backslashes, control characters, the byte-order mark, and the bytes that
 * start or continue multi-byte sequences, truncated or overlong.
 */
const arbitraryBytes = fc
  .array(
    fc.oneof(
      fc.uint8Array({ maxLength: 8 }),
      fc.string({ unit: "binary", maxLength: 6 }).map(utf8),
      fc
        .constantFrom(
          [0x5c],
          [0x5c, 0x78, 0x66, 0x66], // the text `\xff` itself
          [0x00],
          [0x1f],
          [0x7f],
          BOM,
          [0xc0, 0x80], // overlong NUL
          [0xed, 0xa0, 0x80], // an encoded surrogate
          [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
          [0xe2, 0x82], // truncated
          [0x80],
          [0xff],
        )
        .map((b) => new Uint8Array(b)),
    ),
    { maxLength: 8 },
  )
  .map((pieces) => new Uint8Array(Buffer.concat(pieces)));

describe("names", () => {
  it("unescapeName(escapeName(bytes)) is the bytes, for arbitrary bytes", () => {
    fc.assert(
      fc.property(arbitraryBytes, (bytes) => {
        expect(unescapeName(escapeName(bytes))).toEqual(bytes);
      }),
      { numRuns: 5000 },
    );
  });

  it("escapeName(unescapeName(text)) is the text, for whatever escapeName prints", () => {
    fc.assert(
      fc.property(arbitraryBytes, (bytes) => {
        const printed = escapeName(bytes);
        expect(escapeName(unescapeName(printed))).toBe(printed);
      }),
      { numRuns: 2000 },
    );
  });

  it("distinct names print differently, also with a leading byte-order mark", () => {
    expect(escapeName(new Uint8Array([...BOM, 0x61]))).not.toBe(escapeName(utf8("a")));
    fc.assert(
      fc.property(arbitraryBytes, arbitraryBytes, (a, b) => {
        fc.pre(!Buffer.from(a).equals(Buffer.from(b)));
        expect(escapeName(a)).not.toBe(escapeName(b));
      }),
      { numRuns: 2000 },
    );
  });

  it("prints valid UTF-8 as is and escapes backslash, control characters and invalid bytes", () => {
    expect(escapeName(utf8("café"))).toBe("café");
    expect(escapeName(utf8("a\\b\n\x7f"))).toBe("a\\\\b\\x0a\\x7f");
    expect(escapeName(new Uint8Array([0x6e, 0xff, 0xfe]))).toBe("n\\xff\\xfe");
    // A name that is not UTF-8 as a whole keeps its valid sequences readable.
    expect(escapeName(new Uint8Array([...utf8("café"), 0xff]))).toBe("café\\xff");
    expect(escapeName(new Uint8Array([0xed, 0xa0, 0x80]))).toBe("\\xed\\xa0\\x80");
  });

  it("reads escapes the printer does not produce as the bytes they name", () => {
    expect(unescapeName("\\xFF\\x41\\xc3\\xa9")).toEqual(new Uint8Array([0xff, 0x41, 0xc3, 0xa9]));
    expect(unescapeName("a/b\\x2fc")).toEqual(utf8("a/b/c"));
  });

  it("refuses a backslash that starts no escape, naming it", () => {
    for (const bad of ["a\\", "a\\q", "\\x", "\\xf", "\\xg0", "\\u00ff"]) {
      expect(() => unescapeName(bad), bad).toThrow(
        expect.objectContaining({ code: "VALIDATION", message: expect.stringContaining("is not an escape") }),
      );
    }
    expect(() => unescapeName("\ud800")).toThrow(expect.objectContaining({ code: "VALIDATION" }));
  });

  it("abbreviates a long path for a message to its start and its end", () => {
    const short = utf8(`/tmp/${"a".repeat(MESSAGE_PATH_BYTES - 10)}\\x`);
    expect(abbreviatePath(short)).toBe(escapeName(short));
    const long = new Uint8Array([...utf8(`/tmp/tree/${"d".repeat(5000)}/`), 0xff, ...utf8("/é/file")]);
    const shown = abbreviatePath(long);
    expect(shown).toMatch(/^\/tmp\/tree\/d+…d+\/\\xff\/é\/file$/);
    expect(Buffer.byteLength(shown)).toBeLessThan(MESSAGE_PATH_BYTES + 10);
    // A cut inside a multi-byte character shows its bytes, escaped.
    const cutInside = new Uint8Array([...utf8("x".repeat(79)), ...utf8("é"), ...utf8("y".repeat(500))]);
    expect(abbreviatePath(cutInside)).toMatch(/^x{79}\\xc3…y+$/);
  });
});
