/** The app's name escaping prints what `castore ls` prints; segments carry any bytes through a URL. */
import { describe, expect, it } from "vitest";
import { decodeSegment, encodeRootSegment, encodeSegment } from "../shared/segments.js";
import { escapeName } from "./names.js";

const bytes = (...b: number[]) => Uint8Array.from(b);

describe("escapeName", () => {
  it("shows UTF-8 as is and escapes backslashes, controls and bytes outside UTF-8", () => {
    expect(escapeName(new TextEncoder().encode("héllo.txt"))).toBe("héllo.txt");
    expect(escapeName(new TextEncoder().encode("a\\b\n"))).toBe("a\\\\b\\x0a");
    expect(escapeName(bytes(0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74))).toBe("caf\\xe9.t");
    expect(escapeName(bytes(0xff, 0xc3, 0xa9))).toBe("\\xffé");
    expect(escapeName(bytes(0xed, 0xa0, 0x80))).toBe("\\xed\\xa0\\x80"); // a surrogate's encoding is not UTF-8
  });
});

describe("path segments", () => {
  it("round-trip every byte", () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    expect(decodeSegment(encodeSegment(all))).toEqual(all);
    expect(encodeSegment(bytes(0x63, 0xe9, 0x2f, 0x20))).toBe("c%E9%2F%20");
  });

  it("read unencoded characters as their UTF-8 bytes and refuse a broken escape", () => {
    expect(decodeSegment("é%41")).toEqual(bytes(0xc3, 0xa9, 0x41));
    expect(() => decodeSegment("a%4")).toThrow(/bad percent-encoding at "%4"/);
  });

  it("keep a ref root one segment", () => {
    expect(encodeRootSegment("ref:releases/latest")).toBe("ref:releases%2Flatest");
  });
});
