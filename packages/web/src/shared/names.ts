/**
 * Names as `castore ls` prints them, in the browser app and (through this
 * package's entry point) in the cli: valid UTF-8 as is, with backslash and control characters
 * escaped as `\\` and `\xNN`; in a name that is not UTF-8, every byte outside
 * a well-formed sequence is `\xNN`. So a non-UTF-8 name shows escaped and
 * two names never show the same.
 */
// ignoreBOM: by default TextDecoder drops a leading U+FEFF, and a name that
// starts with one would print like the same name without it.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const BACKSLASH = 0x5c;

export function escapeName(bytes: Uint8Array): string {
  let text: string | undefined;
  try {
    text = decoder.decode(bytes);
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    // eslint-disable-next-line no-control-regex
    return text.replace(/[\\\x00-\x1f\x7f]/g, (c) => escapeAscii(c.charCodeAt(0)));
  }
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    if (b < 0x80) {
      out += b === BACKSLASH || b < 0x20 || b === 0x7f ? escapeAscii(b) : String.fromCharCode(b);
      i++;
      continue;
    }
    const length = utf8SequenceLength(bytes, i);
    if (length === 0) {
      out += `\\x${hex2(b)}`;
      i++;
      continue;
    }
    out += decoder.decode(bytes.subarray(i, i + length));
    i += length;
  }
  return out;
}

function escapeAscii(b: number): string {
  return b === BACKSLASH ? "\\\\" : `\\x${hex2(b)}`;
}

function hex2(b: number): string {
  return b.toString(16).padStart(2, "0");
}
/**
 * Length of the well-formed multi-byte UTF-8 sequence starting at `i`, or 0
 * when there is none (Unicode Table 3-7: no overlong forms, no surrogates,
 * nothing above U+10FFFF), the same rule the fatal TextDecoder applies.
 */
function utf8SequenceLength(bytes: Uint8Array, i: number): number {
  const b = bytes[i];
  const inRange = (k: number, lo: number, hi: number) =>
    i + k < bytes.length && bytes[i + k] >= lo && bytes[i + k] <= hi;
  const tail = (k: number) => inRange(k, 0x80, 0xbf);
  if (b >= 0xc2 && b <= 0xdf) return tail(1) ? 2 : 0;
  if (b === 0xe0) return inRange(1, 0xa0, 0xbf) && tail(2) ? 3 : 0;
  if (b === 0xed) return inRange(1, 0x80, 0x9f) && tail(2) ? 3 : 0;
  if (b >= 0xe1 && b <= 0xef) return tail(1) && tail(2) ? 3 : 0;
  if (b === 0xf0) return inRange(1, 0x90, 0xbf) && tail(2) && tail(3) ? 4 : 0;
  if (b === 0xf4) return inRange(1, 0x80, 0x8f) && tail(2) && tail(3) ? 4 : 0;
  if (b >= 0xf1 && b <= 0xf3) return tail(1) && tail(2) && tail(3) ? 4 : 0;
  return 0;
}
