/**
 * Bearer-token authentication for the server: `authorization: Bearer TOKEN`.
 * Tokens are kept only as SHA-256 hashes and compared with
 * crypto.timingSafeEqual over those equal-length hashes, against every
 * configured token (no early exit), so neither a token's content nor its
 * length leaks through timing. Tokens never appear in messages or logs.
 */
import { createHash, timingSafeEqual } from "node:crypto";

const sha256 = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest();

export class BearerTokens {
  private readonly hashes: Buffer[];

  constructor(tokens: readonly string[]) {
    if (tokens.length === 0) throw new Error("authTokens: at least one token is needed");
    for (const t of tokens) {
      if (t.length === 0 || /\s/.test(t))
        throw new Error("authTokens: a token must be non-empty and contain no whitespace");
    }
    this.hashes = tokens.map(sha256);
  }

  /** Whether an `authorization` header value carries one of the tokens. */
  accepts(header: string | string[] | undefined): boolean {
    if (typeof header !== "string") return false;
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) return false;
    const presented = sha256(m[1]);
    let ok = false;
    for (const h of this.hashes) ok = timingSafeEqual(presented, h) || ok;
    return ok;
  }
}

/**
 * Tokens from the text of a token file: one per line; blank lines and lines
 * starting with `#` are ignored, surrounding whitespace is trimmed.
 */
export function parseAuthTokens(text: string): string[] {
  const tokens: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (/\s/.test(line)) throw new Error("token file: a line holds more than one word (tokens contain no whitespace)");
    tokens.push(line);
  }
  if (tokens.length === 0)
    throw new Error("token file: no tokens (one per line; blank lines and # comments are ignored)");
  return tokens;
}
