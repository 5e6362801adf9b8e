/**
 * URL path segments for names, shared by the server and the browser app.
 * Names are bytes, not always UTF-8: a segment is the percent-encoding of a
 * name's bytes (`%FF` is the byte 0xff; a character that is not encoded
 * stands for its UTF-8 bytes). No imports: this file is bundled for the browser.
 */

export class SegmentError extends Error {}

const encoder = new TextEncoder();

/** The bytes a percent-encoded segment stands for; a `%` not followed by two hex digits is a SegmentError. */
export function decodeSegment(segment: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < segment.length;) {
    if (segment[i] === "%") {
      const hex = segment.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
        throw new SegmentError(`bad percent-encoding at ${JSON.stringify(segment.slice(i, i + 3))} in the path`);
      }
      out.push(parseInt(hex, 16));
      i += 3;
      continue;
    }
    const ch = String.fromCodePoint(segment.codePointAt(i)!);
    for (const b of encoder.encode(ch)) out.push(b);
    i += ch.length;
  }
  return Uint8Array.from(out);
}

/** A name's bytes as one path segment: unreserved ASCII stays, every other byte is %XX. */
export function encodeSegment(name: Uint8Array): string {
  let out = "";
  for (const b of name) {
    const unreserved =
      (b >= 0x30 && b <= 0x39) ||
      (b >= 0x41 && b <= 0x5a) ||
      (b >= 0x61 && b <= 0x7a) ||
      b === 0x2d ||
      b === 0x2e ||
      b === 0x5f ||
      b === 0x7e;
    out += unreserved ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** A root as one segment: a digest as is, `ref:NAME` with the name's `/` as %2F. */
export function encodeRootSegment(root: string): string {
  return encodeSegment(encoder.encode(root)).replace(/%3A/g, ":");
}
