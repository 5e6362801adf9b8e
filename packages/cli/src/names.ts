/**
 * How names (bytes, not necessarily UTF-8) are shown to people and written to
 * JSON, and how a name so shown is read back from a command line.
 *
 * Text output (escapeName): valid UTF-8 is printed as is, except that
 * backslash and control characters (U+0000–U+001F, U+007F) are escaped as
 * `\\` and `\xNN`, and so is every byte that is not part of a well-formed
 * UTF-8 sequence (`\xff`). So a non-UTF-8 name is visibly escaped and two
 * distinct names never print the same.
 *
 * unescapeName is its exact inverse: `unescapeName(escapeName(b))` is `b` for
 * every byte string, so whatever `ls` prints can be pasted back as a PATH.
 * It also accepts forms the printer does not produce (`\xFF`, `\x41` for
 * `A`, `\xc3\xa9` for `é`); each still means exactly the bytes written.
 */
import { ValidationError } from "@castore-ts/core";

// One escaping for the cli and the browser app: @castore-ts/web's (shared/names.ts), by its own entry
// point: the package's main one loads the web server (Connect, protobuf), a fifth of `castore import`'s start.
import { escapeName } from "@castore-ts/web/names";

export { escapeName };

const BACKSLASH = 0x5c;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const HEX2 = /^[0-9a-fA-F]{2}$/;

/**
 * The bytes of a name (or a path of names) written as escapeName prints it:
 * `\\` is a backslash, `\xNN` the byte NN, every other character its UTF-8
 * encoding. A backslash followed by anything else is a ValidationError, so
 * a mistyped escape is reported rather than looked up as a literal name.
 */
export function unescapeName(text: string): Uint8Array {
  const parts: Buffer[] = [];
  let i = 0;
  while (i < text.length) {
    const slash = text.indexOf("\\", i);
    const end = slash < 0 ? text.length : slash;
    if (end > i) {
      const run = text.slice(i, end);
      // Not reachable from a command line (Node decodes argv as UTF-8), but a caller's string could hold one.
      if (LONE_SURROGATE.test(run))
        throw new ValidationError(
          `${JSON.stringify(text)} holds a lone UTF-16 surrogate, which is no character and has no bytes`,
        );
      parts.push(Buffer.from(run, "utf8"));
    }
    if (slash < 0) break;
    if (text[slash + 1] === "\\") {
      parts.push(Buffer.of(BACKSLASH));
      i = slash + 2;
    } else if (text[slash + 1] === "x" && HEX2.test(text.slice(slash + 2, slash + 4))) {
      parts.push(Buffer.of(parseInt(text.slice(slash + 2, slash + 4), 16)));
      i = slash + 4;
    } else {
      const shown = JSON.stringify(text.slice(slash, slash + 4));
      throw new ValidationError(
        `${JSON.stringify(text)}: ${shown} at character ${slash} is not an escape; write a backslash as \\\\ and a byte as \\xNN (two hex digits), as ls prints them`,
      );
    }
  }
  const bytes = Buffer.concat(parts);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Paths in messages: whole up to this many bytes, longer ones by their start and their end. */
export const MESSAGE_PATH_BYTES = 200;
const MESSAGE_PATH_HEAD = 80;

/**
 * A path for an error message, escaped like a name. One over
 * MESSAGE_PATH_BYTES (a deep tree's is thousands of bytes) shows its first
 * and last bytes with `…` between: the start says which tree, the end which
 * file. Cut as bytes and each part escaped, so no escape is cut in two.
 */
export function abbreviatePath(path: Uint8Array): string {
  if (path.length <= MESSAGE_PATH_BYTES) return escapeName(path);
  return `${escapeName(path.subarray(0, MESSAGE_PATH_HEAD))}…${escapeName(path.subarray(path.length - (MESSAGE_PATH_BYTES - MESSAGE_PATH_HEAD)))}`;
}

/** --help text of the commands that print names or take a PATH. */
export const NAMES_HELP = `
Names are bytes and need not be UTF-8. They are printed as text: valid UTF-8
as is, a backslash as \\\\, control characters and bytes that are not UTF-8
as \\xNN (two hex digits), e.g. n\\xff\\xfe. A PATH argument (castore ls) is
read the same way, so a name can be pasted back as printed (quoted for the
shell), e.g. castore ls ROOT 'dir/n\\xff\\xfe'; a backslash followed by
anything else is an error.
`;

/** JSON form of a name or target: `{ name: escaped text, name_b64: exact bytes }` (see README). */
export function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}
