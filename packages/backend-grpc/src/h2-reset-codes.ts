/**
 * What an HTTP/2 stream's reset code means for a gRPC call, on either side
 * (the client's call, the server's request): connect-node's mapping
 * (connectErrorFromH2ResetCode). NO_ERROR and STREAM_CLOSED mean nothing
 * went wrong: no error.
 */
import { constants as h2 } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

/** Each reset code that is an error: its name, for messages, and the gRPC status it maps to. */
const RESETS: ReadonlyMap<number, { name: string; status: Code }> = new Map([
  [h2.NGHTTP2_PROTOCOL_ERROR, { name: "PROTOCOL_ERROR", status: Code.Internal }],
  [h2.NGHTTP2_INTERNAL_ERROR, { name: "INTERNAL_ERROR", status: Code.Internal }],
  [h2.NGHTTP2_FLOW_CONTROL_ERROR, { name: "FLOW_CONTROL_ERROR", status: Code.Internal }],
  [h2.NGHTTP2_SETTINGS_TIMEOUT, { name: "SETTINGS_TIMEOUT", status: Code.Internal }],
  [h2.NGHTTP2_FRAME_SIZE_ERROR, { name: "FRAME_SIZE_ERROR", status: Code.Internal }],
  [h2.NGHTTP2_COMPRESSION_ERROR, { name: "COMPRESSION_ERROR", status: Code.Internal }],
  [h2.NGHTTP2_CONNECT_ERROR, { name: "CONNECT_ERROR", status: Code.Internal }],
  [h2.NGHTTP2_REFUSED_STREAM, { name: "REFUSED_STREAM", status: Code.Unavailable }],
  [h2.NGHTTP2_CANCEL, { name: "CANCEL", status: Code.Canceled }],
  [h2.NGHTTP2_ENHANCE_YOUR_CALM, { name: "ENHANCE_YOUR_CALM", status: Code.ResourceExhausted }],
  [h2.NGHTTP2_INADEQUATE_SECURITY, { name: "INADEQUATE_SECURITY", status: Code.PermissionDenied }],
  [h2.NGHTTP2_HTTP_1_1_REQUIRED, { name: "HTTP_1_1_REQUIRED", status: Code.PermissionDenied }],
]);

/** The error a stream closed with `rstCode` stands for, or undefined when it closed without one. */
export function errorOfResetCode(rstCode: number | undefined): ConnectError | undefined {
  const reset = rstCode === undefined ? undefined : RESETS.get(rstCode);
  if (reset === undefined) return undefined;
  return new ConnectError(
    `http/2 stream closed with error code ${reset.name} (0x${rstCode!.toString(16)})`,
    reset.status,
  );
}
