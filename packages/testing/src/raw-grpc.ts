/**
 * One gRPC call made with node:http2 alone, with any headers (malformed
 * ones included: pseudo-headers, grpc-timeout) and raw request messages,
 * for tests that must send what no gRPC client would.
 */
import * as http2 from "node:http2";

export interface RawGrpcAnswer {
  /** The HTTP :status, if response headers came. */
  httpStatus?: number;
  /** grpc-status from the trailers, or from the headers of a Trailers-Only answer. */
  grpcStatus?: number;
  /** grpc-message, percent-decoded. */
  grpcMessage?: string;
  /** The response messages (uncompressed ones), in order. */
  messages: Uint8Array[];
  /** The stream's error code when it was reset or failed instead (e.g. ERR_HTTP2_STREAM_ERROR). */
  streamError?: string;
}

export interface RawGrpcCallOptions {
  /** Request messages, each framed as an uncompressed gRPC message (default: none). */
  messages?: Uint8Array[];
  /** Whether the request is ended after the messages (default true); false leaves it open, as a stalled client. */
  end?: boolean;
}

/** A GetDirectoryRequest encoded by hand: `digest` (field 1) if given, `recursive` (field 2). */
export function encodeGetRequest(digest: Uint8Array | undefined, recursive: boolean): Uint8Array {
  const parts: number[] = [];
  if (digest !== undefined) parts.push(0x0a, digest.length, ...digest);
  if (recursive) parts.push(0x10, 0x01);
  return Uint8Array.from(parts);
}

/** Frames messages as uncompressed gRPC messages. */
export function frameGrpcMessages(messages: readonly Uint8Array[]): Buffer {
  return Buffer.concat(
    messages.flatMap((m) => {
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(m.length, 1);
      return [prefix, Buffer.from(m)];
    }),
  );
}

function parseMessages(body: Buffer): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let pos = 0; pos + 5 <= body.length;) {
    const n = body.readUInt32BE(pos + 1);
    out.push(new Uint8Array(body.subarray(pos + 5, pos + 5 + n)));
    pos += 5 + n;
  }
  return out;
}

function decodeGrpcMessage(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  const s = Array.isArray(v) ? v.join(", ") : v;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Sends one request on `session` (or on a new connection to `origin`,
 * closed afterwards) and resolves with whatever came back once the stream
 * has closed; it never rejects.
 */
export async function rawGrpcCall(
  target: string | http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  opts: RawGrpcCallOptions = {},
): Promise<RawGrpcAnswer> {
  const own = typeof target === "string";
  const session = own ? http2.connect(target) : target;
  if (own) session.on("error", () => {});
  try {
    return await new Promise<RawGrpcAnswer>((resolve) => {
      const answer: RawGrpcAnswer = { messages: [] };
      let stream: http2.ClientHttp2Stream;
      try {
        stream = session.request({ ":method": "POST", "content-type": "application/grpc", te: "trailers", ...headers });
      } catch (e) {
        resolve({ ...answer, streamError: (e as NodeJS.ErrnoException).code ?? String(e) });
        return;
      }
      const chunks: Buffer[] = [];
      const takeStatus = (h: http2.IncomingHttpHeaders) => {
        if (h["grpc-status"] !== undefined) answer.grpcStatus = Number(h["grpc-status"]);
        if (h["grpc-message"] !== undefined) answer.grpcMessage = decodeGrpcMessage(h["grpc-message"]);
      };
      stream.on("response", (h) => {
        answer.httpStatus = Number(h[":status"]);
        takeStatus(h);
      });
      stream.on("trailers", takeStatus);
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("error", (e: NodeJS.ErrnoException) => (answer.streamError ??= e.code ?? e.message));
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        answer.messages = parseMessages(Buffer.concat(chunks));
        if (
          answer.streamError === undefined &&
          stream.rstCode !== undefined &&
          stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR &&
          answer.grpcStatus === undefined
        ) {
          answer.streamError = `RST_STREAM ${stream.rstCode}`;
        }
        resolve(answer);
      };
      // The answer is complete when the response ends, even if the request
      // side was left open (end: false): then this client hangs up.
      stream.on("end", () => {
        settle();
        if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      });
      stream.on("close", settle);
      const body = frameGrpcMessages(opts.messages ?? []);
      if (opts.end === false) stream.write(body);
      else stream.end(body);
    });
  } finally {
    if (own) session.close();
  }
}
