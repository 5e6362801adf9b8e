/**
 * Writing a gRPC status on the wire: the `grpc-message` encoding, and a
 * response that is only a status, for calls answered before any handler
 * runs (a malformed request, the server shutting down).
 */
import type * as http2 from "node:http2";
import type { ConnectError } from "@connectrpc/connect";

/** grpc-message encoding (PROTOCOL-HTTP2.md): UTF-8, then %XX for bytes outside 0x20–0x7E and for '%'. */
export function percentEncodeGrpcMessage(message: string): string {
  const bytes = Buffer.from(message, "utf8");
  let out = "";
  for (const b of bytes) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * Answers with `error`'s status alone, in one HEADERS frame that ends the
 * stream ("Trailers-Only"), which every gRPC client reads whatever the HTTP
 * status. `httpStatus` other than 200 is for requests that are not valid
 * HTTP in the first place. Does nothing once the response has begun.
 */
export function respondWithStatus(res: http2.Http2ServerResponse, error: ConnectError, httpStatus = 200): void {
  if (res.headersSent || res.writableEnded || res.stream.destroyed) return;
  res.writeHead(httpStatus, {
    "content-type": "application/grpc+proto",
    "grpc-status": String(error.code),
    "grpc-message": percentEncodeGrpcMessage(error.rawMessage),
  });
  res.end();
}
