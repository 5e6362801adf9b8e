/**
 * The client's two gRPC calls, server streaming (Get) and client streaming
 * (Put), on connect-node's HTTP/2 client (`createNodeHttpClient` over the
 * shared Http2SessionManager) and connect's gRPC protocol helpers (request
 * headers, response and trailer validation, status parsing).
 *
 * Why not connect's `createClient`: its transport runs every message through
 * a chain of about six async generators (split, decompress, parse, trailer
 * check, …) and parses with protobuf-es; for a stream of 100 000 small
 * directories that chain costs several times what checking a directory
 * does. Here a received chunk is split into messages in one synchronous pass
 * and handed over as a batch of raw bytes (decoded by core's codec), and an
 * upload joins the messages that are ready into one write. The wire is the
 * same: one Directory per gRPC message, standard gRPC framing and status.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalClientFn } from "@connectrpc/connect/protocol";
import { requestHeader, validateResponse, validateTrailer } from "@connectrpc/connect/protocol-grpc";
import { envelope, EnvelopeReader, FLAG_COMPRESSED } from "./grpc-framing.js";

/** The messages of a chunk of a response: no compression was negotiated, so none may be compressed. */
function uncompressed(reader: EnvelopeReader, chunk: Uint8Array): Uint8Array[] {
  const envelopes = reader.push(chunk);
  const out = new Array<Uint8Array>(envelopes.length);
  for (let i = 0; i < envelopes.length; i++) {
    if (envelopes[i].flags & FLAG_COMPRESSED) {
      throw new ConnectError("received a compressed message, but no compression was negotiated", Code.Internal);
    }
    out[i] = envelopes[i].data;
  }
  return out;
}

export interface CallTarget {
  httpClient: UniversalClientFn;
  /** e.g. "http://host:port"; the path is appended. */
  baseUrl: string;
  /** Largest message accepted from the server. */
  maxMessageBytes: number;
  /** Bearer token for the `authorization` header. */
  authToken?: string;
}

function headers(target: CallTarget): Headers {
  const h = requestHeader(true, undefined, undefined);
  if (target.authToken !== undefined) h.set("authorization", `Bearer ${target.authToken}`);
  return h;
}

/**
 * A server-streaming call: sends `request`, yields the response messages in
 * batches (one batch per received chunk). Leaving the loop early, or
 * aborting `signal`, cancels the call (RST_STREAM CANCEL).
 */
export async function* serverStreamingCall(
  target: CallTarget,
  path: string,
  request: Uint8Array,
  signal?: AbortSignal,
): AsyncGenerator<Uint8Array[], void, undefined> {
  const controller = new AbortController();
  const callSignal = signal ? AbortSignal.any([signal, controller.signal]) : controller.signal;
  let completed = false;
  try {
    const response = await target.httpClient({
      url: target.baseUrl + path,
      method: "POST",
      header: headers(target),
      body: (async function* () {
        yield envelope([request]);
      })(),
      signal: callSignal,
    });
    const { foundStatus, headerError } = validateResponse(response.status, response.header);
    if (headerError) throw headerError;
    const reader = new EnvelopeReader(target.maxMessageBytes);
    for await (const chunk of response.body) {
      const messages = uncompressed(reader, chunk);
      if (messages.length > 0) yield messages;
    }
    reader.end();
    if (!foundStatus) validateTrailer(response.trailer, response.header);
    completed = true;
  } finally {
    if (!completed) controller.abort();
  }
}

/**
 * A client-streaming call: sends every batch of `requests` as one write
 * (each message of a batch its own gRPC message) and resolves to the single
 * response message. Aborting `signal` cancels the call with RST_STREAM
 * (never a clean end of stream; see http2-connection.ts).
 */
export async function clientStreamingCall(
  target: CallTarget,
  path: string,
  requests: AsyncIterable<Uint8Array[]>,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const response = await target.httpClient({
    url: target.baseUrl + path,
    method: "POST",
    header: headers(target),
    body: (async function* () {
      for await (const batch of requests) {
        if (batch.length > 0) yield envelope(batch);
      }
    })(),
    signal,
  });
  const { foundStatus, headerError } = validateResponse(response.status, response.header);
  if (headerError) throw headerError;
  const reader = new EnvelopeReader(target.maxMessageBytes);
  const messages: Uint8Array[] = [];
  for await (const chunk of response.body) messages.push(...uncompressed(reader, chunk));
  reader.end();
  if (!foundStatus) validateTrailer(response.trailer, response.header);
  if (messages.length !== 1) {
    throw new ConnectError(`protocol error: expected one response message, got ${messages.length}`, Code.Unimplemented);
  }
  return messages[0];
}
