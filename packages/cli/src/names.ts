/**
 * How names (bytes, not necessarily UTF-8) are shown to people and written to JSON.
 *
 * Text output: valid UTF-8 is printed as is, except that backslash, control
 * characters and invalid bytes are escaped as `\\`, `\xNN`; so a non-UTF-8
 * name is visibly escaped and two distinct names never print the same.
 */
const decoder = new TextDecoder("utf-8", { fatal: true });

export function escapeName(bytes: Uint8Array): string {
  let text: string | undefined;
  try {
    text = decoder.decode(bytes);
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    // eslint-disable-next-line no-control-regex
    return text.replace(/[\\\x00-\x1f\x7f]/g, (c) => (c === "\\" ? "\\\\" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`));
  }
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    // Keep valid UTF-8 runs readable; escape only the invalid bytes.
    let j = i;
    while (j < bytes.length && bytes[j] < 0x80) j++;
    for (let k = i; k < j; k++) {
      const b = bytes[k];
      out += b === 0x5c ? "\\\\" : b < 0x20 || b === 0x7f ? `\\x${b.toString(16).padStart(2, "0")}` : String.fromCharCode(b);
    }
    if (j < bytes.length) {
      out += `\\x${bytes[j].toString(16).padStart(2, "0")}`;
      j++;
    }
    i = j;
  }
  return out;
}

/** JSON form of a name or target: `{ name: escaped text, name_b64: exact bytes }` (see README). */
export function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64");
}
