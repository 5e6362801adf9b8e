/**
 * The gRPC DirectoryService (tvix.castore.v1 / snix.castore.v1) on top of any
 * castore DirectoryService: request checks, limits and status mapping. The
 * server (server.ts) mounts it under both service names.
 */
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { Digest, type Directory, type DirectoryService, encodeDirectory } from "@castore/core";
import type { DirectoryService as DirectoryServiceDesc, GetDirectoryRequest } from "@castore/proto";
import { unknownFieldProblem } from "./received-directory.js";
import { invalidArgument, resourceExhausted, toConnectError } from "./status.js";

/** A pino-compatible logger; the server is silent without one. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface UploadLimits {
  /** Most directories in one Put stream (default 1 000 000). */
  maxDirectoriesPerUpload: number;
  /** Most bytes (canonical encodings summed) in one Put stream (default 256 MiB). */
  maxUploadBytes: number;
}

export const DEFAULT_MAX_DIRECTORIES_PER_UPLOAD = 1_000_000;
export const DEFAULT_MAX_UPLOAD_BYTES = 256 * 1024 * 1024;

/**
 * Aborted when the client resets the call's stream (set per request by the
 * server from node's 'aborted' event; connect's own signal fires later, on
 * 'close').
 */
export const clientAbortedKey = createContextKey<AbortSignal>(new AbortController().signal, {
  description: "castore: the client reset the stream",
});

/** connect reports an undecodable request message as INTERNAL "parse binary: …"; it is the client's fault. */
function asRequestError(e: unknown): unknown {
  if (e instanceof ConnectError && e.code === Code.Internal && e.rawMessage.startsWith("parse binary")) {
    return invalidArgument(`request is not a valid Directory message: ${e.rawMessage}`);
  }
  return e;
}

function requestedDigest(req: GetDirectoryRequest): Digest {
  if (req.byWhat.case !== "digest") {
    throw invalidArgument("GetDirectoryRequest has no by_what: set digest");
  }
  const bytes = req.byWhat.value;
  if (bytes.length !== 32) {
    throw invalidArgument(`invalid digest length in GetDirectoryRequest: expected 32 bytes, got ${bytes.length}`, "INVALID_DIGEST");
  }
  return Digest.fromBytes(bytes);
}

export function createDirectoryServiceImpl(
  service: DirectoryService,
  limits: UploadLimits,
  logger: Logger,
): ServiceImpl<typeof DirectoryServiceDesc> {
  async function* get(req: GetDirectoryRequest, ctx: HandlerContext): AsyncGenerator<Directory> {
    const digest = requestedDigest(req);
    const signal = ctx.signal;
    try {
      if (!req.recursive) {
        const directory = await service.get(digest, { signal });
        if (directory === undefined) {
          throw new ConnectError(`directory ${digest} not found`, Code.NotFound);
        }
        yield directory;
        return;
      }
      // One message per directory, as the backend yields them. connect-node
      // writes each message and waits for 'drain' when the stream's buffer is
      // full, so a slow client holds this generator (and the backend's read)
      // instead of making the server buffer the tree.
      let sent = 0;
      for await (const directory of service.getRecursive(digest, { signal })) {
        yield directory;
        sent++;
      }
      logger.debug({ rpc: "Get", root: digest.hex, recursive: true, sent }, "recursive get done");
    } catch (e) {
      if (!(e instanceof ConnectError)) {
        logger.warn({ rpc: "Get", digest: digest.hex, err: e }, "get failed");
      }
      throw toConnectError(e);
    }
  }

  async function put(requests: AsyncIterable<Directory>, ctx: HandlerContext) {
    const signal = AbortSignal.any([ctx.signal, ctx.values.get(clientAbortedKey)]);
    const putter = service.putMultipleStart({ signal });
    let count = 0;
    let bytes = 0;
    try {
      try {
        for await (const directory of requests) {
          const problem = unknownFieldProblem(directory);
          if (problem !== undefined) {
            throw invalidArgument(`directory #${count} of the upload is not canonical: ${problem}`);
          }
          count++;
          if (count > limits.maxDirectoriesPerUpload) {
            throw resourceExhausted(`upload exceeds the limit of ${limits.maxDirectoriesPerUpload} directories`);
          }
          bytes += encodeDirectory(directory).length;
          if (bytes > limits.maxUploadBytes) {
            throw resourceExhausted(`upload exceeds the limit of ${limits.maxUploadBytes} bytes`);
          }
          await putter.put(directory);
        }
      } catch (e) {
        throw asRequestError(e);
      }
      // A reset stream (the client cancelled or went away) ends the request
      // body like a clean end of stream in node's http2 compat layer; only
      // the 'aborted' event tells them apart. Never commit such an upload.
      if (signal.aborted) throw new ConnectError("the client cancelled the upload", Code.Canceled);
      const root = await putter.close();
      logger.debug({ rpc: "Put", root: root.hex, directories: count, bytes }, "upload stored");
      return { rootDigest: root.bytes };
    } catch (e) {
      // A failed, refused or cancelled upload (the client went away, the
      // server is shutting down) stores nothing.
      await putter.abort(e).catch(() => {});
      const status = toConnectError(e);
      if (status.code === Code.Internal || status.code === Code.Unavailable) {
        logger.warn({ rpc: "Put", directories: count, err: e }, "upload failed");
      } else {
        logger.debug({ rpc: "Put", directories: count, code: Code[status.code], msg: status.rawMessage }, "upload refused");
      }
      throw status;
    }
  }

  return { get, put };
}
