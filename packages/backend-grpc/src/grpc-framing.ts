/**
 * gRPC message framing ("Length-Prefixed-Message": a flags byte, a 4-byte
 * big-endian length, the message), for many messages at a time: a chunk of
 * a body is split in one synchronous pass, and messages ready together are
 * joined into one chunk to write.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export const FLAG_COMPRESSED = 0x01;

export interface Envelope {
  flags: number;
  data: Uint8Array;
}

/** Frames messages (uncompressed), joined into one chunk; `total` is their framed size if known. */
export function envelope(messages: readonly Uint8Array[], total?: number): Uint8Array {
  if (total === undefined) {
    total = 0;
    for (const m of messages) total += 5 + m.length;
  }
  const out = new Uint8Array(total);
  let pos = 0;
  for (const m of messages) {
    const n = m.length;
    out[pos] = 0;
    out[pos + 1] = n >>> 24;
    out[pos + 2] = (n >>> 16) & 0xff;
    out[pos + 3] = (n >>> 8) & 0xff;
    out[pos + 4] = n & 0xff;
    out.set(m, pos + 5);
    pos += 5 + n;
  }
  return out;
}

/** The 5 bytes that frame an uncompressed message of `length` bytes, written before it. */
export function envelopePrefix(length: number): Uint8Array {
  const out = new Uint8Array(5);
  out[1] = length >>> 24;
  out[2] = (length >>> 16) & 0xff;
  out[3] = (length >>> 8) & 0xff;
  out[4] = length & 0xff;
  return out;
}

/** A fresh array of `length` bytes that the caller overwrites whole: large ones not zero-filled first (own memory, no pool). */
function uninitializedBytes(length: number): Uint8Array {
  const b = length >= 4096 ? Buffer.allocUnsafeSlow(length) : Buffer.alloc(length);
  return new Uint8Array(b.buffer, b.byteOffset, length);
}

/** Splits a body into messages, across chunk boundaries. */
export class EnvelopeReader {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** Framed size of the message `pending` starts, once its prefix is known (else 0). */
  private pendingNeed = 0;

  /** `maxMessageBytes`: a longer message is RESOURCE_EXHAUSTED, found from its length prefix. */
  constructor(private readonly maxMessageBytes: number) {}

  /** The messages completed by `chunk` (views into the received bytes). */
  push(chunk: Uint8Array): Envelope[] {
    // A plain Uint8Array view of node's Buffer, so that decoders which slice()
    // copy (Buffer#slice returns views that would keep the whole chunk alive).
    let buf = Buffer.isBuffer(chunk) ? new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength) : chunk;
    if (this.pendingBytes > 0) {
      // A large message arriving in many small chunks: collect them and join
      // once, when the message is complete (joining at every chunk would copy
      // the message over and over, quadratic in its size).
      if (this.pendingNeed > 0 && this.pendingBytes + buf.length < this.pendingNeed) {
        this.pending.push(buf);
        this.pendingBytes += buf.length;
        return [];
      }
      // Not zero-filled first (every byte is written below): a blob's messages are a quarter MiB each.
      const joined = uninitializedBytes(this.pendingBytes + buf.length);
      let pos = 0;
      for (const p of this.pending) {
        joined.set(p, pos);
        pos += p.length;
      }
      joined.set(buf, pos);
      buf = joined;
      this.pending = [];
      this.pendingBytes = 0;
      this.pendingNeed = 0;
    }
    const out: Envelope[] = [];
    let pos = 0;
    while (buf.length - pos >= 5) {
      const flags = buf[pos];
      const length = buf[pos + 1] * 0x1000000 + (buf[pos + 2] << 16) + (buf[pos + 3] << 8) + buf[pos + 4];
      if (flags & ~FLAG_COMPRESSED) {
        throw new ConnectError(`protocol error: invalid message flags 0x${flags.toString(16)}`, Code.Internal);
      }
      if (length > this.maxMessageBytes) {
        throw new ConnectError(
          `message size ${length} is larger than configured readMaxBytes ${this.maxMessageBytes}`,
          Code.ResourceExhausted,
        );
      }
      if (buf.length - pos - 5 < length) break;
      out.push({ flags, data: buf.subarray(pos + 5, pos + 5 + length) });
      pos += 5 + length;
    }
    if (pos < buf.length) {
      // The start of a message; received chunks are not reused, so a view will do.
      const rest = buf.subarray(pos);
      this.pending.push(rest);
      this.pendingBytes += rest.length;
      // the prefix was checked in the loop above when it is complete
      this.pendingNeed = rest.length >= 5 ? 5 + (rest[1] * 0x1000000 + (rest[2] << 16) + (rest[3] << 8) + rest[4]) : 0;
    }
    return out;
  }

  /** Call at the end of the body. */
  end(): void {
    if (this.pendingBytes > 0) {
      throw new ConnectError(
        `protocol error: the body ended inside a message (${this.pendingBytes} bytes left)`,
        Code.Internal,
      );
    }
  }
}
