/**
 * URL paths of the web port: `/<kind>/<root>/<path…>` where `<root>` is a
 * digest in hex (or b3:) or `ref:NAME` (a ref name's `/` written `%2F`, so the
 * root stays one segment), and every path segment is the percent-encoding of
 * a name's bytes: names are bytes, not always UTF-8, so `%FF` is the byte
 * 0xff, and a character that is not encoded stands for its UTF-8 bytes.
 */
import { type RootArgument, ValidationError, parseRootArgument } from "@castore-ts/core";
import { SegmentError, decodeSegment as decodeShared } from "../shared/segments.js";

function decodeSegment(segment: string): Uint8Array {
  try {
    return decodeShared(segment);
  } catch (e) {
    if (e instanceof SegmentError) throw new ValidationError(e.message);
    throw e;
  }
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
