/**
 * FastCDC content-defined chunking, the 2020 variant, cut for cut and hash for
 * hash the `v2020` module of the Rust crate `fastcdc` (nlfiedler/fastcdc-rs,
 * 4.0.1, commit f76938d8c2d77799852415247c9b3e1fd91b73f3, MIT). snix/tvix
 * castore chunks blobs with that crate (`AsyncStreamCDC::new`, so
 * normalization level 1), and chunk digests only agree if the cut points do.
 *
 * The crate keeps a 64-bit gear hash: per byte `hash = (hash << 1) + GEAR[byte]`
 * (mod 2^64), cutting where `hash & mask == 0`. It starts hashing at `minSize`
 * (cut-point skipping), uses the stricter mask `maskS` below `avgSize` and the
 * looser `maskL` above it (normalized chunking), and cuts at `maxSize` at the
 * latest. Its loop takes two bytes per round, the first through a left-shifted
 * table (GEAR_LS = GEAR << 1) and a left-shifted mask, so the hash it reports
 * at an even cut position is the gear hash shifted left by one.
 *
 * The scan itself runs in WebAssembly (fastcdc.wat, assembled into
 * fastcdc-wasm.ts), which has the 64-bit integers JavaScript lacks; JavaScript
 * keeps the options, the tables and the streaming. Checking
 * `(hash << 1) & (mask << 1)` at even positions, as the crate does, is the same
 * test as `hash & mask` (no mask has bit 63), so the scan needs no GEAR_LS and
 * steps a byte at a time; the shift is applied to the reported hash only.
 */

import { FASTCDC_WASM_BASE64 } from "./fastcdc-wasm.js";

/** Chunk size bounds, in bytes, and how tightly sizes cluster around `avgSize`. */
export interface ChunkingOptions {
  /** No chunk is shorter, except the last one of a stream. */
  minSize: number;
  /** The size the masks aim at. */
  avgSize: number;
  /** No chunk is longer. */
  maxSize: number;
  /** The crate's `Normalization` level: 0 spreads sizes widely, 3 clusters them at `avgSize`. Default 1. */
  normalization?: 0 | 1 | 2 | 3;
}

/**
 * snix/tvix castore's parameters: 128 KiB / 256 KiB / 512 KiB. Its object-store
 * blob service chunks with `avg_chunk_size` 256 KiB, min = avg / 2, max = avg * 2,
 * through `AsyncStreamCDC::new` (normalization level 1).
 */
export const SNIX_CHUNKING: ChunkingOptions = Object.freeze({
  minSize: 128 * 1024,
  avgSize: 256 * 1024,
  maxSize: 512 * 1024,
  normalization: 1 as const,
});

/** The crate's bounds on the three sizes (`MINIMUM_MIN` … `MAXIMUM_MAX`). */
export const CHUNK_SIZE_LIMITS = Object.freeze({
  minSize: [64, 1_048_576],
  avgSize: [256, 4_194_304],
  maxSize: [1024, 16_777_216],
} as const);

/**
 * The crate's MASKS, as hex: index n serves an average chunk size of 2^n bytes.
 * Indexes 0–4 are padding; 5 and 25 are reached only at normalization level 3.
 */
// prettier-ignore
export const MASKS_HEX: readonly string[] = [
  "0", "0", "0", "0", "0",
  "0000000001804110", "0000000001803110", "0000000018035100", "0000001800035300", "0000019000353000",
  "0000590003530000", "0000d90003530000", "0000d90103530000", "0000d90303530000", "0000d90313530000",
  "0000d90f03530000", "0000d90303537000", "0000d90703537000", "0000d90707537000", "0000d91707537000",
  "0000d91747537000", "0000d91767537000", "0000d93767537000", "0000d93777537000", "0000d93777577000",
  "0000db3777577000",
];

/**
 * The crate's GEAR table: entry i is the first 8 bytes (big-endian) of the MD5
 * digest of 64 bytes all equal to i.
 */
// prettier-ignore
export const GEAR_HEX: readonly string[] = [
  "3b5d3c7d207e37dc", "784d68ba91123086", "cd52880f882e7298", "eacf8e4e19fdcca7",
  "c31f385dfbd1632b", "1d5f27001e25abe6", "83130bde3c9ad991", "c4b225676e9b7649",
  "aa329b29e08eb499", "b67fcbd21e577d58", "0027baaada2acf6b", "e3ef2d5ac73c2226",
  "0890f24d6ed312b7", "a809e036851d7c7e", "f0a6fe5e0013d81b", "1d026304452cec14",
  "03864632648e248f", "cdaacf3dcd92b9b4", "f5e012e63c187856", "8862f9d3821c00b6",
  "a82f7338750f6f8a", "1e583dc6c1cb0b6f", "7a3145b69743a7f1", "abb20fee404807eb",
  "b14b3cfe07b83a5d", "b9dc27898adb9a0f", "3703f5e91baa62be", "cf0bb866815f7d98",
  "3d9867c41ea9dcd3", "1be1fa65442bf22c", "14300da4c55631d9", "e698e9cbc6545c99",
  "4763107ec64e92a5", "c65821fc65696a24", "76196c064822f0b7", "485be841f3525e01",
  "f652bc9c85974ff5", "cad8352face9e3e9", "2a6ed1dceb35e98e", "c6f483badc11680f",
  "3cfd8c17e9cf12f1", "89b83c5e2ea56471", "ae665cfd24e392a9", "ec33c4e504cb8915",
  "3fb9b15fc9fe7451", "d7fd1fd1945f2195", "31ade0853443efd8", "255efc9863e1e2d2",
  "10eab6008d5642cf", "46f04863257ac804", "a52dc42a789a27d3", "daaadf9ce77af565",
  "6b479cd53d87febb", "6309e2d3f93db72f", "c5738ffbaa1ff9d6", "6bd57f3f25af7968",
  "67605486d90d0a4a", "e14d0b9663bfbdae", "b7bbd8d816eb0414", "def8a4f16b35a116",
  "e7932d85aaaffed6", "08161cbae90cfd48", "855507beb294f08b", "91234ea6ffd399b2",
  "ad70cf4b2435f302", "d289a97565bc2d27", "8e558437ffca99de", "96d2704b7115c040",
  "0889bbcdfc660e41", "5e0d4e67dc92128d", "72a9f8917063ed97", "438b69d409e016e3",
  "df4fed8a5d8a4397", "00f41dcf41d403f7", "4814eb038e52603f", "9dafbacc58e2d651",
  "fe2f458e4be170af", "4457ec414df6a940", "06e62f1451123314", "bd1014d173ba92cc",
  "def318e25ed57760", "9fea0de9dfca8525", "459de1e76c20624b", "aeec189617e2d666",
  "126a2c06ab5a83cb", "b1321532360f6132", "65421503dbb40123", "2d67c287ea089ab3",
  "6c93bff5a56bd6b6", "4ffb2036cab6d98d", "ce7b785b1be7ad4f", "edb42ef6189fd163",
  "dc905288703988f6", "365f9c1d2c691884", "c640583680d99bfe", "3cd4624c07593ec6",
  "7f1ea8d85d7c5805", "014842d480b57149", "0b649bcb5a828688", "bcd5708ed79b18f0",
  "e987c862fbd2f2f0", "982731671f0cd82c", "baf13e8b16d8c063", "8ea3109cbd951bba",
  "d141045bfb385cad", "2acbc1a0af1f7d30", "e6444d89df03bfdf", "a18cc771b8188ff9",
  "9834429db01c39bb", "214add07fe086a1f", "8f07c19b1f6b3ff9", "56a297b1bf4ffe55",
  "94d558e493c54fc7", "40bfc24c764552cb", "931a706f8a8520cb", "32229d322935bd52",
  "2560d0f5dc4fefaf", "9dbcc48355969bb6", "0fd81c3985c0b56a", "e03817e1560f2bda",
  "c1bb4f81d892b2d5", "b0c4864f4e28d2d7", "3ecc49f9d9d6c263", "51307e99b52ba65e",
  "8af2b688da84a752", "f5d72523b91b20b6", "6d95ff1ff4634806", "562f21555458339a",
  "c0ce47f889336346", "487823e5089b40d8", "e4727c7ebc6d9592", "5a8f7277e94970ba",
  "fca2f406b1c8bb50", "5b1f8a95f1791070", "d304af9fc9028605", "5440ab7fc930e748",
  "312d25fbca2ab5a1", "10f4a4b234a4d575", "90301d55047e7473", "3b6372886c61591e",
  "293402b77c444e06", "451f34a4d3e97dd7", "3158d814d81bc57b", "034942425b9bda69",
  "e2032ff9e532d9bb", "62ae066b8b2179e5", "9545e10c2f8d71d8", "7ff7483eb2d23fc0",
  "00945fcebdc98d86", "8764bbbe99b26ca2", "1b1ec62284c0bfc3", "58e0fcc4f0aa362b",
  "5f4abefa878d458d", "fd74ac2f9607c519", "a4e3fb37df8cbfa9", "bf697e43cac574e5",
  "86f14a3f68f4cd53", "24a23d076f1ce522", "e725cd8048868cc8", "bf3c729eb2464362",
  "d8f6cd57b3cc1ed8", "6329e52425541577", "62aa688ad5ae1ac0", "0a242566269bf845",
  "168b1a4753aca74b", "f789afefff2e7e3c", "6c3362093b6fccdb", "4ce8f50bd28c09b2",
  "006a2db95ae8aa93", "975b0d623c3d1a8c", "18605d3935338c5b", "5bb6f6136cad3c71",
  "0f53a20701f8d8a6", "ab8c5ad2e7e93c67", "40b5ac5127acaa29", "8c7bf63c2075895f",
  "78bd9f7e014a805c", "b2c9e9f4f9c8c032", "efd6049827eb91f3", "2be459f482c16fbd",
  "d92ce0c5745aaa8c", "0aaa8fb298d965b9", "2b37f92c6c803b15", "8c54a5e94e0f0e78",
  "95f9b6e90c0a3032", "e7939faa436c7874", "d16bfe8f6a8a40c9", "44982b86263fd2fa",
  "e285fb39f984e583", "779a8df72d7619d3", "f2d79a8de8d5dd1e", "d1037354d66684e2",
  "004c82a4e668a8e5", "31d40a7668b044e6", "d70578538bd02c11", "db45431078c5f482",
  "977121bb7f6a51ad", "73d5ccbd34eff8dd", "e437a07d356e17cd", "47b2782043c95627",
  "9fb251413e41d49a", "ccd70b60652513d3", "1c95b31e8a1b49b2", "cae73dfd1bcb4c1b",
  "34d98331b1f5b70f", "784e39f22338d92f", "18613d4a064df420", "f1d8dae25f0bcebe",
  "33f77c15ae855efc", "3c88b3b912eb109c", "956a2ec96bafeea5", "1aa005b5e0ad0e87",
  "5500d70527c4bb8e", "e36c57196421cc44", "13c4d286cc36ee39", "5654a23d818b2a81",
  "77b1dc13d161abdc", "734f44de5f8d5eb5", "60717e174a6c89a2", "d47d9649266a211e",
  "5b13a4322bb69e90", "f7669609f8b5fc3c", "21e6ac55bedcdac9", "9b56b62b61166dea",
  "f48f66b939797e9c", "35f332f9c0e6ae9a", "cc733f6a9a878db0", "3da161e41cc108c2",
  "b7d74ae535914d51", "4d493b0b11d36469", "ce264d1dfba9741a", "a9d1f2dc7436dc06",
  "70738016604c2a27", "231d36e96e93f3d5", "7666881197838d19", "4a2a83090aaad40c",
  "f1e761591668b35d", "7363236497f730a7", "301080e37379dd4d", "502dea2971827042",
  "c2c5eb858f32625f", "786afb9edfafbdff", "daee0d868490b2a4", "617366b3268609f6",
  "ae0e35a0fe46173e", "d1a07de93e824f11", "079b8b115ea4cca8", "93a99274558faebb",
  "fb1e6e22e08a03b3", "ea635fdba3698dd0", "cf53659328503a5c", "cde3b31e6fd5d780",
  "8e3e4221d3614413", "ef14d0d86bf1a22c", "e1d830d3f16c5ddb", "aabd2b2a451504e1",
];

/** Validated options with the masks as 64-bit integers, ready for the scan. */
export interface CutParams {
  readonly minSize: number;
  readonly avgSize: number;
  readonly maxSize: number;
  readonly maskS: bigint;
  readonly maskL: bigint;
}

/** Checks `opts` against the crate's limits and picks the masks; RangeError naming the bad option. */
export function resolveChunking(opts: ChunkingOptions): CutParams {
  for (const name of ["minSize", "avgSize", "maxSize"] as const) {
    const value = opts[name];
    const [low, high] = CHUNK_SIZE_LIMITS[name];
    if (!Number.isInteger(value) || value < low || value > high) {
      throw new RangeError(`ChunkingOptions.${name} must be an integer in [${low}, ${high}], got ${value}`);
    }
  }
  const { minSize, avgSize, maxSize } = opts;
  if (avgSize < minSize || avgSize > maxSize) {
    throw new RangeError(
      `ChunkingOptions.avgSize must lie between minSize and maxSize, got ${minSize} / ${avgSize} / ${maxSize}`,
    );
  }
  const level = opts.normalization ?? 1;
  if (level !== 0 && level !== 1 && level !== 2 && level !== 3) {
    throw new RangeError(`ChunkingOptions.normalization must be 0, 1, 2 or 3, got ${String(level)}`);
  }
  // Rounded, not floored, log2: the crate's logarithm2() (4.0.1 restored it).
  const bits = Math.round(Math.log2(avgSize));
  const maskS = MASKS_HEX[bits + level].padStart(16, "0");
  const maskL = MASKS_HEX[bits - level].padStart(16, "0");
  return {
    minSize,
    avgSize,
    maxSize,
    maskS: BigInt(`0x${maskS}`),
    maskL: BigInt(`0x${maskL}`),
  };
}

/** Where the scan module keeps the bytes to cut: after the 256 × 8-byte GEAR table. */
const WINDOW_OFFSET = 2048;
const WASM_PAGE = 65536;

/** What the scanner needs of the WebAssembly JS API (the compiler's libs here do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

let scanModule: object | undefined;

/**
 * One instance of the scan module (fastcdc.wat) with a memory of its own: the
 * GEAR table and a window of `capacity` bytes that the caller fills and cuts
 * in place. The scan runs in WebAssembly for its 64-bit integers; a JavaScript
 * port of the loop ran at ~0.1–0.3 GB/s here, the module at several times that.
 */
class CutScanner {
  /** The bytes to cut, written by the caller: a view of the module's memory (it never grows). */
  readonly window: Uint8Array;
  private readonly cutExport: (
    offset: number,
    end: number,
    min: number,
    avg: number,
    max: number,
    maskS: bigint,
    maskL: bigint,
  ) => number;
  private readonly hashGlobal: { value: bigint };

  constructor(readonly capacity: number) {
    scanModule ??= new wasmApi.Module(Buffer.from(FASTCDC_WASM_BASE64, "base64"));
    const memory = new wasmApi.Memory({ initial: Math.ceil((WINDOW_OFFSET + capacity) / WASM_PAGE) });
    const instance = new wasmApi.Instance(scanModule, { env: { memory } });
    const gear = new BigUint64Array(memory.buffer, 0, 256);
    GEAR_HEX.forEach((hex, i) => (gear[i] = BigInt(`0x${hex}`)));
    this.window = new Uint8Array(memory.buffer, WINDOW_OFFSET, capacity);
    this.cutExport = instance.exports.cut as CutScanner["cutExport"];
    this.hashGlobal = instance.exports.hash as { value: bigint };
  }

  /**
   * The crate's `cut_gear` for `window[offset, end)`, returning the chunk
   * length only. With `end - offset >= maxSize` the answer does not depend on
   * later bytes; with less, it is right only if no bytes follow `end`.
   */
  cut(offset: number, end: number, p: CutParams): number {
    return this.cutExport(offset, end, p.minSize, p.avgSize, p.maxSize, p.maskS, p.maskL);
  }

  /** The crate's gear hash at the last cut (0 when fewer than minSize + 1 bytes were left). */
  get lastHash(): bigint {
    return BigInt.asUintN(64, this.hashGlobal.value);
  }
}

/**
 * The one scanner every chunker and findCutPoint use (a cut is synchronous,
 * so they never interleave in it), made on first use and replaced by a larger
 * one when a call needs more room. One instance, not one per chunker: a
 * WebAssembly memory reserves far more address space than it holds, and an
 * import makes a chunker per file.
 */
let sharedScanner: CutScanner | undefined;

/** The shared scanner, with a window of at least max(4 MiB, 2 × maxSize) (so a refill leaves room for a cut). */
function scannerFor(maxSize: number, atLeast = 0): CutScanner {
  const want = Math.max(4 << 20, 2 * maxSize, atLeast);
  if (!sharedScanner || sharedScanner.capacity < want) sharedScanner = new CutScanner(want);
  return sharedScanner;
}

/**
 * One cut point within `data` starting at `offset`: returns the chunk length
 * and the crate's gear hash at the cut (what `v2020::FastCDC::cut` returns; 0
 * when fewer than `minSize + 1` bytes are left). Only `data[offset, end)` is
 * read. The length is final when `end - offset >= maxSize`; with fewer bytes it
 * is final only if no more bytes follow `end` (end of stream), since a later
 * byte could have been the cut. FastCdcChunker takes care of that when streaming.
 */
export function findCutPoint(
  data: Uint8Array,
  offset: number,
  end: number,
  opts: ChunkingOptions,
): { length: number; hash: bigint } {
  if (!Number.isInteger(offset) || !Number.isInteger(end) || offset < 0 || offset > end || end > data.length) {
    throw new RangeError(`findCutPoint: need 0 <= offset <= end <= data.length, got ${offset}, ${end}, ${data.length}`);
  }
  const p = resolveChunking(opts);
  // No byte past maxSize can matter: only those are copied into the scanner.
  const length = Math.min(end - offset, p.maxSize);
  const scanner = scannerFor(p.maxSize, length);
  scanner.window.set(data.subarray(offset, offset + length));
  return { length: scanner.cut(0, length, p), hash: scanner.lastHash };
}

/**
 * A fresh, unshared array of `length` bytes that the caller overwrites at once.
 * Skips the zero-filling of `new Uint8Array`, which cost as much as the copy
 * that follows it: a chunk is a quarter MiB. (Buffer.allocUnsafe takes sizes
 * this large from no pool, so the bytes are not shared.)
 */
function uninitializedBytes(length: number): Uint8Array {
  const buffer = Buffer.allocUnsafeSlow(length);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, length);
}

/**
 * Streaming chunker: push pieces of any size, get back the chunks they
 * complete; finish() returns the rest. The boundaries are those of
 * findCutPoint over the whole stream at once, however it was split. Every
 * returned chunk is a fresh array of exactly its bytes that the caller owns:
 * the chunker keeps no reference to it, nor to any pushed piece after push()
 * returns.
 *
 * Cutting happens in one scan module instance shared by every chunker (see
 * scannerFor; a cut is synchronous, so chunkers never interleave in it): the
 * bytes not yet cut and as much of the piece as fits are copied into its
 * window, cut while at least maxSize bytes are in view (a cut needs that many
 * to be final), and what is left (fewer than maxSize bytes) kept in the
 * chunker's own buffer. That buffer grows as needed up to maxSize: a chunker
 * is made per blob written, and most blobs (files) are small, so it must cost
 * little until it holds much.
 */
export class FastCdcChunker {
  private readonly params: CutParams;
  /** Bytes not yet cut, pending[0, pendingLength): always fewer than maxSize between calls. */
  private pending: Uint8Array = new Uint8Array(0);
  private pendingLength = 0;

  constructor(opts: ChunkingOptions = SNIX_CHUNKING) {
    this.params = resolveChunking(opts);
  }

  push(piece: Uint8Array): Uint8Array[] {
    const chunks: Uint8Array[] = [];
    const max = this.params.maxSize;
    let pos = 0;
    while (this.pendingLength + (piece.length - pos) >= max) {
      const scanner = scannerFor(max);
      const window = scanner.window;
      window.set(this.pending.subarray(0, this.pendingLength));
      const take = Math.min(scanner.capacity - this.pendingLength, piece.length - pos);
      window.set(piece.subarray(pos, pos + take), this.pendingLength);
      pos += take;
      const fill = this.pendingLength + take;
      let start = 0;
      while (fill - start >= max) start = this.cutInto(chunks, scanner, start, fill);
      this.keep(window.subarray(start, fill));
    }
    this.append(piece.subarray(pos));
    return chunks;
  }

  /** Cuts what is left as the end of the stream; the chunker is then empty and can start a new stream. */
  finish(): Uint8Array[] {
    const chunks: Uint8Array[] = [];
    if (this.pendingLength > 0) {
      const scanner = scannerFor(this.params.maxSize);
      scanner.window.set(this.pending.subarray(0, this.pendingLength));
      let start = 0;
      while (start < this.pendingLength) start = this.cutInto(chunks, scanner, start, this.pendingLength);
    }
    this.pendingLength = 0;
    return chunks;
  }

  /** Cuts one chunk at `start` in the scanner's window, appends a copy of it to `chunks`; returns where the next starts. */
  private cutInto(chunks: Uint8Array[], scanner: CutScanner, start: number, end: number): number {
    const length = scanner.cut(start, end, this.params);
    const chunk = uninitializedBytes(length);
    chunk.set(scanner.window.subarray(start, start + length));
    chunks.push(chunk);
    return start + length;
  }

  /** Replaces the pending bytes with `bytes` (fewer than maxSize). */
  private keep(bytes: Uint8Array): void {
    this.pendingLength = 0;
    this.append(bytes);
  }

  /** Adds `bytes` after the pending ones (together fewer than maxSize), growing the buffer as needed. */
  private append(bytes: Uint8Array): void {
    const need = this.pendingLength + bytes.length;
    if (need > this.pending.length) {
      const grown = new Uint8Array(Math.min(this.params.maxSize, Math.max(need, 2 * this.pending.length)));
      grown.set(this.pending.subarray(0, this.pendingLength));
      this.pending = grown;
    }
    this.pending.set(bytes, this.pendingLength);
    this.pendingLength = need;
  }
}
