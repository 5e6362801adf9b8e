/**
 * The one place castore picks its BLAKE3 implementation.
 *
 * Directory messages are small (tens to hundreds of bytes), so per-call
 * overhead dominates: blake3-wasm's one-shot `hash` does ~1.5–2 M such
 * messages/s here, the `blake3` package's Node entry ~0.1–0.2 M (measured when
 * the implementation was chosen; the core benchmark, packages/bench/src/core.ts,
 * keeps measuring the wasm side). Large inputs (file contents) go through
 * `createBlake3Hasher`, on the `blake3` package (native SIMD when its addon
 * built: ~4 GB/s here against ~1.7 GB/s for wasm). One-shot wasm hashing of
 * very large buffers runs out of wasm memory (it aborted with OOM somewhere
 * between 10 and 13 MB), so large inputs never take it: `blake3()` hands
 * anything over ONE_SHOT_MAX to the incremental hasher, which is just as fast
 * at that size.
 */
import * as native from "blake3";
import * as wasm from "blake3-wasm";
import { ByteArena } from "./arena.js";
import { digestBytesEqual } from "./digest-bytes.js";

await wasm.load();

/**
 * Inputs up to this size take the one-shot wasm hash (cheapest per call);
 * larger ones the incremental hasher. Well below where the one-shot hash runs
 * out of wasm memory, and above nearly every directory encoding.
 */
const ONE_SHOT_MAX = 64 * 1024;

/**
 * BLAKE3-256 of `bytes`. Tuned for small inputs (directory encodings), correct
 * for any size: a large directory (a 250 000-file one encodes to ~13 MB) must
 * hash like a small one.
 */
export function blake3(bytes: Uint8Array): Uint8Array {
  if (bytes.length > ONE_SHOT_MAX) {
    const hasher = createBlake3Hasher();
    hasher.update(bytes);
    return hasher.digest();
  }
  // hashOneShot (what wasm.hash wraps) returns a view into wasm memory that
  // the next call overwrites: copied out at once. Copied into small shared
  // chunks (as Buffer's pool does, minus its per-call overhead) as a plain
  // Uint8Array, so digests compare equal to other Uint8Arrays.
  return digestPool.copy(wasm.hashOneShot(bytes, 32));
}

const digestPool = new ByteArena(8 * 1024);

/**
 * Whether BLAKE3-256 of `bytes` is `expected` (32 bytes): a read's check,
 * compared where the hash lands in wasm memory, with no copy of the digest.
 */
export function blake3Matches(bytes: Uint8Array, expected: Uint8Array): boolean {
  const actual = bytes.length > ONE_SHOT_MAX ? blake3(bytes) : wasm.hashOneShot(bytes, 32);
  return expected.length === 32 && digestBytesEqual(actual, 0, expected, 0);
}

export interface Blake3Hasher {
  update(chunk: Uint8Array): void;
  digest(): Uint8Array;
}

/** An incremental BLAKE3-256 hasher for large or streamed inputs. */
export function createBlake3Hasher(): Blake3Hasher {
  const h = native.createHash();
  return {
    update(chunk) {
      // Feed in bounded slices: a fallback wasm build copies each update into its memory.
      const step = 1 << 20;
      for (let i = 0; i < chunk.length; i += step) h.update(chunk.subarray(i, i + step));
    },
    digest() {
      return new Uint8Array(h.digest() as Uint8Array);
    },
  };
}
