/**
 * A Content-Type guessed from a file name's extension; anything unknown is
 * application/octet-stream. Text types say charset=utf-8 (a guess the browser
 * can only be told, not work out). Kept short on purpose: what a browser can
 * show inline, plus common archives.
 */
const TYPES: Record<string, string> = {
  txt: "text/plain; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  html: "text/html; charset=utf-8",
  htm: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  json: "application/json",
  xml: "application/xml",
  csv: "text/csv; charset=utf-8",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  ico: "image/x-icon",
  pdf: "application/pdf",
  wasm: "application/wasm",
  zip: "application/zip",
  gz: "application/gzip",
  tar: "application/x-tar",
  xz: "application/x-xz",
  zst: "application/zstd",
  nix: "text/plain; charset=utf-8",
  sh: "text/x-shellscript; charset=utf-8",
  c: "text/x-c; charset=utf-8",
  h: "text/x-c; charset=utf-8",
  rs: "text/x-rust; charset=utf-8",
  py: "text/x-python; charset=utf-8",
  ts: "text/plain; charset=utf-8",
  toml: "text/plain; charset=utf-8",
  yaml: "text/plain; charset=utf-8",
  yml: "text/plain; charset=utf-8",
};

export const OCTET_STREAM = "application/octet-stream";

/** The type for a name given as bytes (a name that is not UTF-8 still has an ASCII extension, or none). */
export function contentTypeOf(name: Uint8Array | string): string {
  const text = typeof name === "string" ? name : new TextDecoder().decode(name);
  const dot = text.lastIndexOf(".");
  if (dot <= 0) return OCTET_STREAM;
  return TYPES[text.slice(dot + 1).toLowerCase()] ?? OCTET_STREAM;
}

/**
 * A Content-Disposition header naming the file (RFC 6266): an ASCII
 * `filename` fallback with anything else replaced by `_`, and `filename*` with
 * the name's own bytes percent-encoded when they are UTF-8. A name that is not
 * UTF-8 gets only the ASCII fallback: `filename*` must declare a charset the
 * bytes are in.
 */
export function contentDisposition(kind: "inline" | "attachment", name: Uint8Array): string {
  let ascii = "";
  for (const b of name)
    ascii += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c && b !== 0x25 ? String.fromCharCode(b) : "_";
  let header = `${kind}; filename="${ascii}"`;
  let utf8: string | undefined;
  try {
    utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(name);
  } catch {
    utf8 = undefined;
  }
  if (utf8 !== undefined && utf8 !== ascii) header += `; filename*=UTF-8''${percentEncode(name)}`;
  return header;
}

/** RFC 8187 attr-char: letters, digits and !#$&+-.^_`|~ stay; every other byte is %XX. */
function percentEncode(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9!#$&+\-.^_`|~]/.test(c) && b < 0x80 ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
