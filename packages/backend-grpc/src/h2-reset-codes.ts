/**
 * What an HTTP/2 stream's reset code means for a gRPC call, on either side
 * (the client's call, the server's request): connect-node's mapping
 * (connectErrorFromH2ResetCode). NO_ERROR and STREAM_CLOSED mean nothing
 * went wrong: no error.
 */
import { constants as h2 } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";

const STATUS_OF_RESET: ReadonlyMap<number, Code> = new Map([
  [h2.NGHTTP2_PROTOCOL_ERROR, Code.Internal],
  [h2.NGHTTP2_INTERNAL_ERROR, Code.Internal],
  [h2.NGHTTP2_FLOW_CONTROL_ERROR, Code.Internal],
  [h2.NGHTTP2_SETTINGS_TIMEOUT, Code.Internal],
  [h2.NGHTTP2_FRAME_SIZE_ERROR, Code.Internal],
  [h2.NGHTTP2_COMPRESSION_ERROR, Code.Internal],
  [h2.NGHTTP2_CONNECT_ERROR, Code.Internal],
  [h2.NGHTTP2_REFUSED_STREAM, Code.Unavailable],
  [h2.NGHTTP2_CANCEL, Code.Canceled],
  [h2.NGHTTP2_ENHANCE_YOUR_CALM, Code.ResourceExhausted],
  [h2.NGHTTP2_INADEQUATE_SECURITY, Code.PermissionDenied],
  [h2.NGHTTP2_HTTP_1_1_REQUIRED, Code.PermissionDenied],
]);

const NAME_OF_RESET: ReadonlyMap<number, string> = new Map([
  [h2.NGHTTP2_PROTOCOL_ERROR, "PROTOCOL_ERROR"],
  [h2.NGHTTP2_INTERNAL_ERROR, "INTERNAL_ERROR"],
  [h2.NGHTTP2_FLOW_CONTROL_ERROR, "FLOW_CONTROL_ERROR"],
  [h2.NGHTTP2_SETTINGS_TIMEOUT, "SETTINGS_TIMEOUT"],
  [h2.NGHTTP2_FRAME_SIZE_ERROR, "FRAME_SIZE_ERROR"],
  [h2.NGHTTP2_REFUSED_STREAM, "REFUSED_STREAM"],
  [h2.NGHTTP2_CANCEL, "CANCEL"],
  [h2.NGHTTP2_COMPRESSION_ERROR, "COMPRESSION_ERROR"],
  [h2.NGHTTP2_CONNECT_ERROR, "CONNECT_ERROR"],
  [h2.NGHTTP2_ENHANCE_YOUR_CALM, "ENHANCE_YOUR_CALM"],
  [h2.NGHTTP2_INADEQUATE_SECURITY, "INADEQUATE_SECURITY"],
  [h2.NGHTTP2_HTTP_1_1_REQUIRED, "HTTP_1_1_REQUIRED"],
]);

/** The error a stream closed with `rstCode` stands for, or undefined when it closed without one. */
export function errorOfResetCode(rstCode: number | undefined): ConnectError | undefined {
  const status = rstCode === undefined ? undefined : STATUS_OF_RESET.get(rstCode);
  if (status === undefined) return undefined;
  return new ConnectError(
    `http/2 stream closed with error code ${NAME_OF_RESET.get(rstCode!)} (0x${rstCode!.toString(16)})`,
    status,
  );
}
