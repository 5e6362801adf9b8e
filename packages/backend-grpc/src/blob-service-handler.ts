/**
 * The gRPC BlobService (tvix.castore.v1 and snix.castore.v1) on top of any
 * castore BlobService: Stat, Read (a stream of BlobChunk) and Put (a stream
 * of BlobChunk in, the digest out). The call itself (auth, deadlines, idle
 * timer, framing, trailers) is grpc-call-handler.ts.
 *
 * Flow control is end to end: Read's messages are pulled from the backend's
 * stream only as the response writer drains (message-batcher.ts reads ahead
 * at most one message, and the writer waits for HTTP/2 window), so a slow
 * reader holds the backend instead of making the server buffer the blob; Put
 * awaits each write into the BlobWriter before reading the next message, so a
 * slow backend holds the client through HTTP/2 flow control.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { type BlobService, Digest } from "@castore-ts/core";
import {
  BlobChunkSchema,
  PutBlobResponseSchema,
  ReadBlobRequestSchema,
  StatBlobRequestSchema,
  StatBlobResponseSchema,
} from "@castore-ts/proto";
import type { MessageSource } from "./message-batcher.js";
import { invalidArgument } from "./status.js";
import { type Call, type Logger, type Route, singleMessage } from "./grpc-call-handler.js";
import type { ServerMetrics } from "./metrics.js";

/** Largest BlobChunk the server sends (the data; the message adds a few bytes). */
export const MAX_SENT_BLOB_CHUNK_BYTES = 1024 * 1024;

export interface BlobRoutesOptions {
  /** Service names served: "tvix" → /tvix.castore.v1.BlobService/…, "snix" → /snix.castore.v1.BlobService/…. */
  serviceNames: readonly ("tvix" | "snix")[];
  logger: Logger;
  /** Counts blob bytes and BlobChunk messages in and out. */
  metrics?: ServerMetrics;
}

/** The paths of the BlobService methods under each service name. */
export function blobPaths(serviceNames: readonly ("tvix" | "snix")[]): string[] {
  return serviceNames.flatMap((n) => ["Stat", "Read", "Put"].map((m) => `/${n}.castore.v1.BlobService/${m}`));
}

/** The BlobService's routes, by path. */
export function blobRoutes(blobs: BlobService, opts: BlobRoutesOptions): Map<string, Route> {
  const { logger, metrics } = opts;
  const routes = new Map<string, Route>();
  for (const name of opts.serviceNames) {
    routes.set(`/${name}.castore.v1.BlobService/Stat`, { rpc: "Stat", open: openStat });
    routes.set(`/${name}.castore.v1.BlobService/Read`, { rpc: "Read", open: openRead });
    routes.set(`/${name}.castore.v1.BlobService/Put`, { rpc: "Put", open: openPut });
  }
  return routes;

  async function openStat(call: Call): Promise<MessageSource<Uint8Array>> {
    const request = await singleMessage(call.messages(), "Stat", "StatBlobRequest");
    let parsed;
    try {
      parsed = fromBinary(StatBlobRequestSchema, request);
    } catch (e) {
      throw invalidArgument(`request is not a valid StatBlobRequest: ${(e as Error).message}`);
    }
    const digest = requestDigest(parsed.digest, "StatBlobRequest");
    const stat = await blobs.stat(digest, { signal: call.signal, chunks: parsed.sendChunks });
    if (stat === undefined) throw new ConnectError(`blob ${digest} not found`, Code.NotFound);
    // No bao: send_bao is answered with none, as the protocol allows ("MAY contain").
    const chunks = parsed.sendChunks
      ? (stat.chunks ?? []).map((c) => ({ digest: c.digest.bytes, size: BigInt(c.size) }))
      : [];
    const response = toBinary(StatBlobResponseSchema, create(StatBlobResponseSchema, { chunks }));
    return { items: [response], encode: (m) => m };
  }

  async function openRead(call: Call): Promise<MessageSource<Uint8Array>> {
    const request = await singleMessage(call.messages(), "Read", "ReadBlobRequest");
    let parsed;
    try {
      parsed = fromBinary(ReadBlobRequestSchema, request);
    } catch (e) {
      throw invalidArgument(`request is not a valid ReadBlobRequest: ${(e as Error).message}`);
    }
    const digest = requestDigest(parsed.digest, "ReadBlobRequest");
    // Asked before the first message, so that an absent blob is a status, not an empty stream.
    const bytes = await blobs.read(digest, { signal: call.signal });
    if (bytes === undefined) throw new ConnectError(`blob ${digest} not found`, Code.NotFound);
    // In parts, the data as the backend yielded it (a read's arrays are the reader's to keep): no copy.
    return { items: pieces(bytes, MAX_SENT_BLOB_CHUNK_BYTES), encode: blobChunkParts };
  }

  /** The stream's bytes in pieces of at most `max` bytes (views, no copy), counted as they go. */
  async function* pieces(bytes: AsyncIterable<Uint8Array>, max: number): AsyncGenerator<Uint8Array> {
    for await (const piece of bytes) {
      for (let at = 0; at < piece.length; at += max) {
        const out = piece.subarray(at, Math.min(piece.length, at + max));
        metrics?.blobBytesSent.inc(out.length);
        metrics?.blobChunksSent.inc();
        yield out;
      }
    }
  }

  async function openPut(call: Call): Promise<MessageSource<Uint8Array>> {
    const { signal } = call;
    const writer = blobs.openWriter({ signal });
    let messages = 0;
    let size = 0;
    let written;
    try {
      for await (const batch of call.messages()) {
        for (const message of batch) {
          let data: Uint8Array;
          try {
            // A view into the received bytes (protobuf-es does not copy bytes fields); they are not reused.
            data = fromBinary(BlobChunkSchema, message).data;
          } catch (e) {
            throw invalidArgument(
              `message #${messages} of the upload is not a valid BlobChunk: ${(e as Error).message}`,
            );
          }
          messages++;
          size += data.length;
          metrics?.blobChunksReceived.inc();
          metrics?.blobBytesReceived.inc(data.length);
          if (data.length > 0) await writer.write(data);
        }
      }
      // A reset stream ends the request body like a clean end in node's
      // http2 compat layer; only the signal tells them apart. Never commit it.
      if (signal.aborted) throw new ConnectError("the client cancelled the upload", Code.Canceled);
      written = await writer.close();
    } catch (e) {
      // A failed, refused, idle or cancelled upload leaves no visible blob.
      await writer.abort(e).catch(() => {});
      throw e;
    }
    if (written.size !== size) {
      // The backend stored other bytes than it was given: never answer OK.
      throw new ConnectError(
        `the blob backend stored ${written.size} bytes for an upload of ${size} bytes`,
        Code.Internal,
      );
    }
    logger.debug({ rpc: "Put", digest: written.digest.hex, size, messages }, "blob stored");
    const response = toBinary(PutBlobResponseSchema, create(PutBlobResponseSchema, { digest: written.digest.bytes }));
    return { items: [response], encode: (m) => m };
  }
}

/** A request's digest field: 32 bytes, else INVALID_ARGUMENT (castore-error-code INVALID_DIGEST) naming where. */
export function requestDigest(bytes: Uint8Array, message: string): Digest {
  if (bytes.length !== 32) {
    throw invalidArgument(
      `invalid digest length in ${message}: expected 32 bytes, got ${bytes.length}`,
      "INVALID_DIGEST",
    );
  }
  return Digest.fromBytes(bytes);
}

/**
 * A BlobChunk message, encoded by hand: field 1 (bytes), length as a varint,
 * the data. Same bytes as protobuf-es would write, without building a message.
 */
export function encodeBlobChunk(data: Uint8Array): Uint8Array {
  const head = blobChunkHead(data.length);
  const out = new Uint8Array(head.length + data.length);
  out.set(head);
  out.set(data, head.length);
  return out;
}

/** A BlobChunk message as two parts: its head (the data field's tag and length), then the data itself. */
export function blobChunkParts(data: Uint8Array): [Uint8Array, Uint8Array] {
  return [blobChunkHead(data.length), data];
}

/** The bytes a BlobChunk of `length` data bytes starts with: field 1's tag (bytes), then the length as a varint. */
function blobChunkHead(length: number): Uint8Array {
  let n = length;
  let varintBytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    varintBytes++;
  }
  const out = new Uint8Array(1 + varintBytes);
  out[0] = 0x0a;
  let pos = 1;
  n = length;
  while (n >= 0x80) {
    out[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[pos] = n;
  return out;
}
