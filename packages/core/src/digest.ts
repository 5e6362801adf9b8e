import { describeValue, isBytes } from "./argument-checks.js";
import { InvalidDigest } from "./errors.js";
import { blake3 } from "./hash.js";
import { equalBytes } from "./model.js";

export const DIGEST_LENGTH = 32;

/** Lowercase hex of bytes without copying them (a Buffer view, not Buffer.from(bytes)). */
export function hexOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/**
 * A compact Set/Map key for digest bytes: 16 UTF-16 code units, each two
 * bytes of the digest, so distinct for distinct bytes (any 16-bit value is a
 * valid code unit of a JS string, unpaired surrogates included). About 56
 * bytes of heap each, like a latin1 string of the 32 bytes, and cheaper to
 * make: no Buffer view and no call into the runtime (measured ~0.6 µs less
 * per key). For sets and maps that only answer "seen before?".
 */
export function digestKey(b: Uint8Array): string {
  return String.fromCharCode(
    b[0] | (b[1] << 8),
    b[2] | (b[3] << 8),
    b[4] | (b[5] << 8),
    b[6] | (b[7] << 8),
    b[8] | (b[9] << 8),
    b[10] | (b[11] << 8),
    b[12] | (b[13] << 8),
    b[14] | (b[15] << 8),
    b[16] | (b[17] << 8),
    b[18] | (b[19] << 8),
    b[20] | (b[21] << 8),
    b[22] | (b[23] << 8),
    b[24] | (b[25] << 8),
    b[26] | (b[27] << 8),
    b[28] | (b[29] << 8),
    b[30] | (b[31] << 8),
  );
}

/** The digest bytes a digestKey was made from (its inverse). */
export function digestKeyBytes(key: string): Uint8Array {
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 16; i++) {
    const unit = key.charCodeAt(i);
    bytes[2 * i] = unit & 0xff;
    bytes[2 * i + 1] = unit >>> 8;
  }
  return bytes;
}

const HEX_RE = /^[0-9a-fA-F]{64}$/;
// Standard base64 of 32 bytes: 43 characters unpadded, or 43 + "=" padded.
const B3_RE = /^b3:([A-Za-z0-9+/]{43})(=?)$/;

let wrapOwned: (bytes: Uint8Array) => Digest;

/**
 * A Digest of 32 bytes that no one else holds or changes (core's own copies):
 * wrapped, not copied again. For core's modules only (not exported by the
 * package), so no caller can hand a Digest bytes it still changes.
 */
export function digestOwning(bytes: Uint8Array): Digest {
  return wrapOwned(bytes);
}

/**
 * A BLAKE3-256 digest: 32 bytes, immutable. `hex` (lowercase) is computed on
 * first use and kept; it doubles as the key for maps and sets. Lazily: an
 * upload makes a Digest per directory and most are never printed or keyed by
 * text, and a 64-character string each was a tenth of an upload's time.
 */
export class Digest {
  private hexText: string | undefined;
  private constructor(readonly bytes: Uint8Array) {}

  static {
    wrapOwned = (bytes) => new Digest(bytes);
  }

  /** Lowercase hex, computed once. */
  get hex(): string {
    return (this.hexText ??= hexOf(this.bytes));
  }

  /** Wraps 32 bytes (copied). Any other length is an InvalidDigest error. */
  static fromBytes(bytes: Uint8Array): Digest {
    if (bytes.length !== DIGEST_LENGTH) {
      throw new InvalidDigest(`invalid digest length: expected ${DIGEST_LENGTH} bytes, got ${bytes.length}`);
    }
    const copy = new Uint8Array(DIGEST_LENGTH);
    copy.set(bytes);
    return new Digest(copy);
  }

  /** Parses 64 hex characters (any case) or `b3:` + standard base64 (padded or not). */
  static parse(text: string): Digest {
    if (HEX_RE.test(text)) return new Digest(Uint8Array.from(Buffer.from(text, "hex")));
    const m = B3_RE.exec(text);
    if (m) {
      const bytes = Buffer.from(m[1] + "=", "base64");
      // The last character carries 2 padding bits; they must be zero for the text to be canonical.
      if (bytes.length === DIGEST_LENGTH && bytes.toString("base64").slice(0, 43) === m[1]) {
        return new Digest(Uint8Array.from(bytes));
      }
    }
    const shown = text.length > 80 ? `${text.slice(0, 77)}...` : text;
    throw new InvalidDigest(
      `invalid digest ${JSON.stringify(shown)}: expected 64 hex characters or b3: followed by base64 of 32 bytes`,
    );
  }

  /** BLAKE3-256 of `bytes`. */
  static of(bytes: Uint8Array): Digest {
    return new Digest(blake3(bytes));
  }

  equals(other: Digest): boolean {
    return equalBytes(this.bytes, other.bytes);
  }

  /** tvix's display form: `b3:` + padded standard base64. */
  toB3(): string {
    return `b3:${Buffer.from(this.bytes).toString("base64")}`;
  }

  /** Lowercase hex, what b3sum prints. */
  toString(): string {
    return this.hex;
  }

  toJSON(): string {
    return this.hex;
  }

  /** A short form for logs and messages. */
  short(): string {
    return this.hex.slice(0, 12);
  }
}

/**
 * Whether `value` is a Digest: this module's, or one from another copy of
 * this package (the same shape, its `hex` that of its 32 bytes: stores key
 * and name objects by `hex`, so a look-alike's must be its bytes').
 */
export function isDigest(value: unknown): value is Digest {
  if (value instanceof Digest) return true;
  const v = value as { bytes?: unknown; equals?: unknown; hex?: unknown } | null;
  return (
    typeof v === "object" &&
    v !== null &&
    isBytes(v.bytes) &&
    v.bytes.length === DIGEST_LENGTH &&
    typeof v.equals === "function" &&
    v.hex === hexOf(v.bytes)
  );
}

const HOW_TO_MAKE = "Digest.parse(hex) or Digest.fromBytes(bytes) makes one";

/**
 * Throws InvalidDigest naming the argument unless `value` is a Digest: a
 * service's own check of its caller, who may not be type-checked
 * (JavaScript, a cast), so that a string or raw bytes are refused as such
 * rather than failing somewhere inside a backend as if the store had.
 */
export function requireDigest(value: unknown, argument: string): asserts value is Digest {
  if (!isDigest(value))
    throw new InvalidDigest(`${argument} is ${describeValue(value)}, not a Digest (${HOW_TO_MAKE})`);
}

/** requireDigest for a list of digests (an array). */
export function requireDigests(value: unknown, argument: string): asserts value is readonly Digest[] {
  if (!Array.isArray(value))
    throw new InvalidDigest(`${argument} is ${describeValue(value)}, not an array of Digests (${HOW_TO_MAKE})`);
  // The element's name is built only for a failure: a batch of a blob import checks tens of thousands.
  for (let i = 0; i < value.length; i++) if (!isDigest(value[i])) requireDigest(value[i], `${argument}[${i}]`);
}
