/**
 * The HTTP/2 request listener around the server's handlers, so that no
 * single request can take the server down.
 *
 * An exception thrown from a 'request' listener is an uncaught exception:
 * the process exits. connect-node's request conversion throws synchronously
 * for a request whose :authority (or host) and :path do not make a URL
 * (`:authority: [::1` → TypeError: Invalid URL), and nghttp2 lets such
 * authorities through. So the request target is checked first, the way
 * connect-node builds it, and a malformed one is answered with HTTP 400 and
 * grpc-status INTERNAL (what a gRPC client makes of a 400 anyway); and
 * whatever else a handler throws synchronously is logged and answered with
 * INTERNAL, or the stream is reset if the response has begun.
 */
import * as http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Logger } from "./directory-service-handler.js";
import { respondWithStatus } from "./status-response.js";

type RequestListener = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;

/** Longest part of a header value shown in a message or log. */
const SHOWN_CHARS = 100;

function shown(value: string): string {
  return JSON.stringify(value.length > SHOWN_CHARS ? `${value.slice(0, SHOWN_CHARS)}…` : value);
}

/** Why the request's target is not a URL (as connect-node builds it), or undefined when it is. */
export function malformedTarget(req: http2.Http2ServerRequest): string | undefined {
  const authority = req.authority as string | undefined;
  if (authority === undefined || authority === "") return "the request has no :authority (or host)";
  if (!URL.canParse(req.url, `http://${authority}`))
    return `malformed :authority ${shown(authority)} or :path ${shown(req.url)}`;
  return undefined;
}

export function guardRequestHandler(handler: RequestListener, logger: Logger): RequestListener {
  return (req, res) => {
    const malformed = malformedTarget(req);
    if (malformed !== undefined) {
      quietly(() => logger.debug({ reason: malformed }, "request refused: malformed target"));
      quietly(() => respondWithStatus(res, new ConnectError(malformed, Code.Internal), 400));
      return;
    }
    try {
      handler(req, res);
    } catch (err) {
      quietly(() =>
        logger.error({ err, path: req.url.slice(0, SHOWN_CHARS) }, "request handler threw: answered INTERNAL"),
      );
      if (!res.headersSent) {
        quietly(() => respondWithStatus(res, new ConnectError("internal error", Code.Internal)));
      } else {
        quietly(() => req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
      }
    }
  };
}

/** Runs `fn`, ignoring what it throws: used where the request has failed already and only the server matters. */
function quietly(fn: () => void): void {
  try {
    fn();
  } catch {
    /* the stream or the logger failed too: nothing more to tell anyone */
  }
}
