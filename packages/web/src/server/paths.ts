/**
 * URL paths of the web port: `/<kind>/<root>/<path…>` where `<root>` is a
 * digest in hex (or b3:) or `ref:NAME` (a ref name's `/` written `%2F`, so the
 * root stays one segment), and every path segment is the percent-encoding of
 * a name's bytes: names are bytes, not always UTF-8, so `%FF` is the byte
 * 0xff, and a character that is not encoded stands for its UTF-8 bytes.
 */
import { type RootArgument, ValidationError, parseRootArgument } from "@castore-ts/core";

const encoder = new TextEncoder();

/** The bytes a percent-encoded segment stands for; a `%` not followed by two hex digits is a ValidationError. */
export function decodeSegment(segment: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < segment.length;) {
    if (segment[i] === "%") {
      const hex = segment.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
        throw new ValidationError(`bad percent-encoding at ${JSON.stringify(segment.slice(i, i + 3))} in the path`);
      }
      out.push(parseInt(hex, 16));
      i += 3;
      continue;
    }
    const cp = segment.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    for (const b of encoder.encode(ch)) out.push(b);
    i += ch.length;
  }
  return Uint8Array.from(out);
}

/** A name's bytes as one path segment: unreserved ASCII stays, every other byte is %XX. */
export function encodeSegment(name: Uint8Array): string {
  let out = "";
  for (const b of name) {
    out +=
      (b >= 0x30 && b <= 0x39) ||
      (b >= 0x41 && b <= 0x5a) ||
      (b >= 0x61 && b <= 0x7a) ||
      b === 0x2d ||
      b === 0x2e ||
      b === 0x5f ||
      b === 0x7e
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

export interface RootedPath {
  root: RootArgument;
  /** The root as written in the URL, decoded (for messages). */
  rootText: string;
  /** The names below the root, in order (empty: the root itself). */
  names: Uint8Array[];
}

/**
 * Parses what follows `/<kind>/` in a URL path (no query). Empty segments
 * (a trailing `/`) are ignored; a name that is empty, `.`, `..` or holds a `/`
 * byte cannot be in any directory and is a ValidationError.
 */
export function parseRootedPath(rest: string): RootedPath {
  const segments = rest.split("/");
  const rootText = new TextDecoder().decode(decodeSegment(segments[0] ?? ""));
  if (rootText === "") throw new ValidationError("the path names no root: expected /<digest or ref:NAME>/<path…>");
  const root = parseRootArgument(rootText);
  const names: Uint8Array[] = [];
  for (const segment of segments.slice(1)) {
    if (segment === "") continue;
    const name = decodeSegment(segment);
    if (
      (name.length === 1 && name[0] === 0x2e) ||
      (name.length === 2 && name[0] === 0x2e && name[1] === 0x2e) ||
      name.includes(0x2f)
    ) {
      throw new ValidationError(`${JSON.stringify(segment)} cannot be a name in a directory`);
    }
    names.push(name);
  }
  return { root, rootText, names };
}
