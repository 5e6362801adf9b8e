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
 *
 * The `blake3` package is loaded on first use, not with this module: most
 * processes never hash a large input (a CLI command listing a directory, a
 * read thread of an import of small files), and loading it (its native addon
 * and Node's stream module, which its hasher class extends) took 12 ms of
 * every process's start and 25-35 ms of every import read thread's.
 */
import { createRequire } from "node:module";
import * as wasm from "blake3-wasm";
// The module blake3-wasm loads its wasm into (its own dependency, pinned).
import { getWasm } from "@c4312/blake3-internal/dist/wasm-types.js";
import { digestBytesEqual } from "./digest-bytes.js";

await wasm.load();

/**
 * Inputs up to this size take the one-shot wasm hash (cheapest per call);
 * larger ones the incremental hasher. Well below where the one-shot hash runs
 * out of wasm memory, and above nearly every directory encoding.
 */
const ONE_SHOT_MAX = 64 * 1024;

/** What the direct calls use of blake3-wasm's Emscripten module (its own types declare only part of it). */
interface Blake3Module {
  readonly HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _hash_oneshot(input: number, inputLength: number, output: number, outputLength: number): void;
}

/**
 * blake3-wasm's one-shot hash, called without its JavaScript wrapper
 * (`hashOneShot`: two scratch checks, Emscripten's generic `ccall` and a
 * view per call), which cost more than hashing a directory: 1 000 hashes of
 * a 1 000-deep chain's directories took 0.22 ms through it and 0.10 ms
 * direct, and in about one isolate in five the wrapper ran at 0.30–0.34 ms
 * for the isolate's whole life while the direct call kept its speed. The
 * input and the digest have addresses of their own, allocated once; HEAPU8
 * is read at each call, as Emscripten replaces it when the memory grows.
 */
const module = getWasm() as unknown as Blake3Module;
if (typeof module._hash_oneshot !== "function" || typeof module._malloc !== "function") {
  throw new Error("blake3-wasm's module has no _hash_oneshot or _malloc export: core's hash.ts needs updating");
}
const inputAt = module._malloc(ONE_SHOT_MAX);
const digestAt = module._malloc(32);

/** Hashes `bytes` (at most ONE_SHOT_MAX) into wasm memory; the digest is at digestAt of the heap returned, until the next call. */
function hashIntoWasm(bytes: Uint8Array): Uint8Array {
  module.HEAPU8.set(bytes, inputAt);
  module._hash_oneshot(inputAt, bytes.length, digestAt, 32);
  return module.HEAPU8;
}

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
  // Copied out of wasm memory at once (the next call overwrites it), as a
  // plain Uint8Array of its own, so digests compare equal to other
  // Uint8Arrays. slice() of 32 bytes was the cheapest copy measured: 1 000
  // hashes took 0.137 ms with it, 0.177 ms with a view into shared chunks
  // (a ByteArena) filled by a loop.
  return hashIntoWasm(bytes).slice(digestAt, digestAt + 32);
}

/**
 * Whether BLAKE3-256 of `bytes` is `expected` (32 bytes): a read's check,
 * compared where the hash lands in wasm memory, with no copy of the digest.
 */
export function blake3Matches(bytes: Uint8Array, expected: Uint8Array): boolean {
  if (expected.length !== 32) return false;
  if (bytes.length > ONE_SHOT_MAX) return digestBytesEqual(blake3(bytes), 0, expected, 0);
  return digestBytesEqual(hashIntoWasm(bytes), digestAt, expected, 0);
}

export interface Blake3Hasher {
  update(chunk: Uint8Array): void;
  digest(): Uint8Array;
}

type NativeBlake3 = typeof import("blake3");
let native: NativeBlake3 | undefined;

/** The `blake3` package, loaded (synchronously) the first time a large input is hashed. */
function nativeBlake3(): NativeBlake3 {
  return (native ??= createRequire(import.meta.url)("blake3") as NativeBlake3);
}

/** An incremental BLAKE3-256 hasher for large or streamed inputs. */
export function createBlake3Hasher(): Blake3Hasher {
  const h = nativeBlake3().createHash();
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
