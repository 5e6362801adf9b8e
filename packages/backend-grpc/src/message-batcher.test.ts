/**
 * The response body's batches (message-batcher.ts): a small first batch, so
 * the client starts on the first directories while the server reads the
 * next, then batches twice as large up to the limit; every message once, in
 * order, each its own gRPC message.
 */
import { describe, expect, it } from "vitest";
import { EnvelopeReader } from "./grpc-framing.js";
import { FIRST_BATCH_BYTES, messageBody } from "./message-batcher.js";

const MAX_BYTES = 64 * 1024;
/** Each message framed is 100 bytes (5 bytes of gRPC framing). */
const FRAMED = 100;

function messages(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => {
    const m = new Uint8Array(FRAMED - 5);
    new DataView(m.buffer).setUint32(0, i);
    return m;
  });
}

async function* produced(items: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const m of items) yield m;
}

describe("messageBody", () => {
  it("sends a first batch of FIRST_BATCH_BYTES, then each twice the last up to maxBytes", async () => {
    const items = messages(2000); // 200 000 bytes framed
    const body = messageBody(async () => ({ items: produced(items), encode: (m: Uint8Array) => m }), {
      maxBytes: MAX_BYTES,
      signal: new AbortController().signal,
      onEnd: () => {},
    });
    const reader = new EnvelopeReader(1 << 20);
    const sizes: number[] = [];
    const received: Uint8Array[] = [];
    for await (const pieces of body) {
      // A batch is written as pieces (a message's header, then its bytes): joined, it is what the wire carries.
      const chunk = Buffer.concat(pieces);
      sizes.push(chunk.length);
      for (const e of reader.push(chunk)) received.push(new Uint8Array(e.data));
    }
    expect(received).toEqual(items);
    // A batch closes at the first message that reaches its size.
    expect(sizes[0]).toBeGreaterThanOrEqual(FIRST_BATCH_BYTES);
    expect(sizes[0]).toBeLessThan(FIRST_BATCH_BYTES + FRAMED);
    for (let i = 1; i < sizes.length; i++) {
      expect(sizes[i]).toBeLessThan(Math.min(FIRST_BATCH_BYTES * 2 ** i, MAX_BYTES) + FRAMED);
    }
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(MAX_BYTES);
  });
});
