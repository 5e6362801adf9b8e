/**
 * The two object formats of the S3 layout (see README "Object layout"):
 *
 * Closure object `closures/<root-hex>`: a header, then every directory of the
 * closure once as a frame (4-byte big-endian length + canonical bytes), in a
 * topological depth-first order: each directory after *every* directory of the
 * closure that refers to it, and, for a tree, each subtree contiguous. So the
 * sub-closure of any directory d lies inside the byte span from d's frame to
 * the end of its last descendant's frame, and one ranged GET of that span
 * serves getRecursive(d). The layout is a function of the closure alone, so
 * two uploads of one closure write identical bytes.
 *
 * Index object `dirs/<hex>`: a header, a pointer (closure root, offset of the
 * directory's frame, end of its span), then the directory's own canonical
 * bytes. A directory without child directories needs no closure object; its
 * pointer is all zeros.
 */
import { type ClosureEntry, CorruptionError, Digest } from "@castore-ts/core";

export const CLOSURE_MAGIC = Buffer.from("castore-closure/1\n", "latin1");
export const INDEX_MAGIC = Buffer.from("castore-index/1\n", "latin1");
/** Bytes of an index object before the directory's bytes: magic, root digest, offset, end. */
export const INDEX_HEADER_LENGTH = INDEX_MAGIC.length + 32 + 8 + 8;
/** Bytes before a frame's directory bytes. */
export const FRAME_PREFIX_LENGTH = 4;
/** The largest frame a reader accepts (a directory's canonical bytes). */
export const MAX_FRAME_LENGTH = 256 * 1024 * 1024;

/** Where a directory sits in a closure object. */
export interface Placement {
  /** Offset of the directory's frame (its length prefix). */
  offset: number;
  /** End (exclusive) of the span that holds the directory's frame and its whole sub-closure. */
  end: number;
}

export interface ClosureLayout {
  /** The closure object's bytes: header and frames. */
  body: Uint8Array;
  /** The directories in the order they are framed, root first. */
  order: ClosureEntry[];
  /** Where each directory (by hex digest) sits. */
  placements: Map<string, Placement>;
}

function childHexes(entry: ClosureEntry): string[] {
  return entry.directory.directories.map((c) => Buffer.from(c.digest).toString("hex"));
}

/**
 * Frames a checked closure (any order; every child of every entry must be an
 * entry, as ClosureValidator guarantees). Order: Kahn's algorithm from the
 * root with a stack, children in the parent's list order. A directory is
 * placed once every directory referring to it is placed, which makes each
 * sub-closure a suffix-contained span; for a tree this is depth-first
 * pre-order, where every subtree is contiguous.
 */
export function layoutClosure(entries: ClosureEntry[], root: Digest): ClosureLayout {
  const byHex = new Map<string, ClosureEntry>();
  for (const e of entries) byHex.set(e.digest.hex, e);
  const parentsLeft = new Map<string, number>();
  for (const e of byHex.values()) {
    for (const c of childHexes(e)) parentsLeft.set(c, (parentsLeft.get(c) ?? 0) + 1);
  }
  const rootEntry = byHex.get(root.hex);
  if (!rootEntry) throw new Error(`layoutClosure: root ${root} is not among the entries`);
  if (parentsLeft.has(root.hex)) throw new Error(`layoutClosure: root ${root} is referred to within its closure`);

  const order: ClosureEntry[] = [];
  const stack: ClosureEntry[] = [rootEntry];
  while (stack.length > 0) {
    const e = stack.pop()!;
    order.push(e);
    const children = childHexes(e);
    for (let i = children.length - 1; i >= 0; i--) {
      const left = parentsLeft.get(children[i])! - 1;
      parentsLeft.set(children[i], left);
      if (left === 0) {
        const child = byHex.get(children[i]);
        if (!child)
          throw new Error(`layoutClosure: ${e.digest} refers to ${children[i]}, which is not among the entries`);
        stack.push(child);
      }
    }
  }
  if (order.length !== byHex.size) {
    throw new Error(`layoutClosure: only ${order.length} of ${byHex.size} directories are reachable from ${root}`);
  }

  let length = CLOSURE_MAGIC.length;
  const offsets = new Map<string, number>();
  for (const e of order) {
    offsets.set(e.digest.hex, length);
    length += FRAME_PREFIX_LENGTH + e.bytes.length;
  }
  const body = Buffer.allocUnsafe(length);
  CLOSURE_MAGIC.copy(body, 0);
  for (const e of order) {
    const at = offsets.get(e.digest.hex)!;
    body.writeUInt32BE(e.bytes.length, at);
    body.set(e.bytes, at + FRAME_PREFIX_LENGTH);
  }

  // A span ends where the last frame of the directory or of any descendant ends;
  // children come after parents, so one pass from the end suffices.
  const placements = new Map<string, Placement>();
  for (let i = order.length - 1; i >= 0; i--) {
    const e = order[i];
    const offset = offsets.get(e.digest.hex)!;
    let end = offset + FRAME_PREFIX_LENGTH + e.bytes.length;
    for (const c of childHexes(e)) end = Math.max(end, placements.get(c)!.end);
    placements.set(e.digest.hex, { offset, end });
  }
  return { body, order, placements };
}

/** A decoded index object. */
export interface IndexRecord {
  /** The closure object that holds the directory's sub-closure; undefined for a directory without child directories. */
  closure?: Digest;
  /** Where the directory's frame and sub-closure sit in that object (zeros when `closure` is undefined). */
  placement: Placement;
  /** The directory's canonical bytes (still to be checked against the digest). */
  bytes: Uint8Array;
}

const ZERO_DIGEST = new Uint8Array(32);

export function encodeIndex(record: IndexRecord): Uint8Array {
  const out = Buffer.allocUnsafe(INDEX_HEADER_LENGTH + record.bytes.length);
  INDEX_MAGIC.copy(out, 0);
  let at = INDEX_MAGIC.length;
  out.set(record.closure?.bytes ?? ZERO_DIGEST, at);
  at += 32;
  out.writeBigUInt64BE(BigInt(record.placement.offset), at);
  out.writeBigUInt64BE(BigInt(record.placement.end), at + 8);
  out.set(record.bytes, INDEX_HEADER_LENGTH);
  return out;
}

/** Decodes an index object read from `key`; anything malformed is a CorruptionError naming the digest. */
export function decodeIndex(digest: Digest, data: Uint8Array): IndexRecord {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const bad = (why: string) => new CorruptionError(`index object of directory ${digest} is corrupt: ${why}`);
  if (buf.length < INDEX_HEADER_LENGTH)
    throw bad(`${buf.length} bytes, shorter than its ${INDEX_HEADER_LENGTH}-byte header`);
  if (!buf.subarray(0, INDEX_MAGIC.length).equals(INDEX_MAGIC)) throw bad("wrong magic (not a castore index object)");
  let at = INDEX_MAGIC.length;
  const root = buf.subarray(at, at + 32);
  at += 32;
  const offset = buf.readBigUInt64BE(at);
  const end = buf.readBigUInt64BE(at + 8);
  const bytes = buf.subarray(INDEX_HEADER_LENGTH);
  const isZero = root.every((b) => b === 0);
  if (isZero) {
    if (offset !== 0n || end !== 0n) throw bad("no closure object named, but a span given");
    return { placement: { offset: 0, end: 0 }, bytes };
  }
  const minEnd = offset + BigInt(FRAME_PREFIX_LENGTH + bytes.length);
  if (offset < BigInt(CLOSURE_MAGIC.length) || end < minEnd || end > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw bad(`impossible span ${offset}..${end} for a ${bytes.length}-byte directory`);
  }
  return { closure: Digest.fromBytes(root), placement: { offset: Number(offset), end: Number(end) }, bytes };
}

/**
 * Splits a byte stream of frames into frames. `length` is how many bytes the
 * stream must carry (a span); a frame that would cross it, a stream that ends
 * early or carries more is a CorruptionError (`what` names the object).
 * Frames are yielded as they complete, so a consumer sees the first
 * directories before the whole body has arrived.
 */
export async function* readFrames(
  chunks: AsyncIterable<Uint8Array>,
  length: number,
  what: () => string,
): AsyncGenerator<Uint8Array, void, undefined> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let consumed = 0; // bytes of the stream already turned into frames
  let need = FRAME_PREFIX_LENGTH; // bytes needed for the next step
  let frameLength = -1; // -1: reading a length prefix

  const take = (n: number): Buffer => {
    const out = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
    const head = out.subarray(0, n);
    const rest = out.subarray(n);
    pending = rest.length > 0 ? [rest] : [];
    pendingBytes = rest.length;
    consumed += n;
    return head;
  };

  for await (const chunk of chunks) {
    if (chunk.length === 0) continue;
    if (consumed + pendingBytes + chunk.length > length) {
      throw new CorruptionError(`${what()}: more bytes than the ${length} expected`);
    }
    pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    pendingBytes += chunk.length;
    while (pendingBytes >= need) {
      if (frameLength < 0) {
        frameLength = take(FRAME_PREFIX_LENGTH).readUInt32BE(0);
        if (frameLength > MAX_FRAME_LENGTH || consumed + frameLength > length) {
          throw new CorruptionError(
            `${what()}: frame at byte ${consumed - FRAME_PREFIX_LENGTH} declares ${frameLength} bytes, ` +
              `past the end of the span (${length} bytes)`,
          );
        }
        need = frameLength;
      } else {
        // Copy: the consumer may keep the frame while later chunks reuse memory.
        const frame = Uint8Array.prototype.slice.call(take(frameLength)) as Uint8Array;
        frameLength = -1;
        need = FRAME_PREFIX_LENGTH;
        yield frame;
      }
    }
  }
  if (consumed !== length) {
    throw new CorruptionError(`${what()}: truncated, ended after ${consumed + pendingBytes} of ${length} bytes`);
  }
}
