/**
 * The gRPC DirectoryService (tvix.castore.v1 and snix.castore.v1) on top of
 * any castore DirectoryService: request checks, limits, status mapping. The
 * call itself (auth, deadlines, framing, trailers) is grpc-call-handler.ts.
 * A directory is encoded with core's codec, one Directory per gRPC message.
 */
import type * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Digest,
  type Directory,
  type DirectoryService,
  encodeDirectory,
  isCastoreError,
  supportsPartialUploads,
} from "@castore-ts/core";
import { GetDirectoryRequestSchema, PutDirectoryResponseSchema } from "@castore-ts/proto";
import type { MessageSource } from "./message-batcher.js";
import { invalidArgument, resourceExhausted } from "./status.js";
import { decodeReceived } from "./wire-directory.js";
import type { BearerTokens } from "./auth.js";
import { PUT_PARTIAL_PATH } from "./sync-service-handler.js";
import {
  type Call,
  createCallHandler,
  type Logger,
  type Route,
  silentLogger,
  singleMessage,
} from "./grpc-call-handler.js";

export { type Logger, silentLogger };

export interface HandlerOptions {
  /** Largest single request message (compressed and decompressed). */
  maxMessageBytes: number;
  /** Most directories in one Put stream. */
  maxDirectoriesPerUpload: number;
  /** Most bytes (canonical encodings summed) in one Put stream. */
  maxUploadBytes: number;
  /** Most entries (directories + files + symlinks) in one received Directory. */
  maxEntriesPerDirectory?: number;
  /**
   * A call whose request stream brings nothing new for this long (a Put or
   * Get that is opened and never sent, or stalls mid-upload) is ended with
   * DEADLINE_EXCEEDED; an upload is aborted. 0 or undefined: no timer.
   */
  idleTimeoutMs?: number;
  /** Accepted bearer tokens; without, calls are not authenticated. */
  authTokens?: BearerTokens;
  /** Service names served: "tvix" → /tvix.castore.v1.DirectoryService/…, "snix" → /snix.castore.v1.DirectoryService/…. */
  serviceNames: readonly ("tvix" | "snix")[];
  /** Aborting it cancels every running call (server shutdown). */
  shutdownSignal: AbortSignal;
  logger: Logger;
}

export const DEFAULT_MAX_DIRECTORIES_PER_UPLOAD = 1_000_000;
export const DEFAULT_MAX_UPLOAD_BYTES = 256 * 1024 * 1024;
export const DEFAULT_MAX_ENTRIES_PER_DIRECTORY = 1_000_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/** The node request handler serving the DirectoryService methods (anything else is UNIMPLEMENTED). */
export function createDirectoryServiceHandler(
  service: DirectoryService,
  opts: HandlerOptions,
): (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void {
  return createCallHandler(directoryRoutes(service, opts), opts);
}

/** The DirectoryService's routes, by path, under each of `opts.serviceNames`. */
export function directoryRoutes(service: DirectoryService, opts: HandlerOptions): Map<string, Route> {
  const routes = new Map<string, Route>();
  for (const name of opts.serviceNames) {
    routes.set(`/${name}.castore.v1.DirectoryService/Get`, { rpc: "Get", open: openGet });
    routes.set(`/${name}.castore.v1.DirectoryService/Put`, { rpc: "Put", open: (call) => openPut(call, "Put") });
  }
  // castore's extension (spec §3.6): the same stream, with references to stored children allowed.
  routes.set(`/${PUT_PARTIAL_PATH}`, { rpc: "PutPartial", open: (call) => openPut(call, "PutPartial") });
  const { logger } = opts;
  return routes;

  /** Get: the response's directories, encoded as the body pulls them. */
  async function openGet(call: Call): Promise<MessageSource<Directory>> {
    const request = await singleMessage(call.messages(), "Get", "GetDirectoryRequest");
    let parsed;
    try {
      parsed = fromBinary(GetDirectoryRequestSchema, request);
    } catch (e) {
      throw invalidArgument(`request is not a valid GetDirectoryRequest: ${(e as Error).message}`);
    }
    if (parsed.byWhat.case !== "digest") {
      throw invalidArgument("GetDirectoryRequest has no by_what: set digest");
    }
    const bytes = parsed.byWhat.value;
    if (bytes.length !== 32) {
      throw invalidArgument(
        `invalid digest length in GetDirectoryRequest: expected 32 bytes, got ${bytes.length}`,
        "INVALID_DIGEST",
      );
    }
    const digest = Digest.fromBytes(bytes);
    const { signal } = call;
    if (!parsed.recursive) {
      const directory = await service.get(digest, { signal });
      if (directory === undefined) throw new ConnectError(`directory ${digest} not found`, Code.NotFound);
      return { items: [directory], encode: encodeDirectory };
    }
    // One message per directory, as the backend yields them, pulled by the
    // body with backpressure (see message-batcher.ts): a slow client holds
    // the backend's read instead of making the server buffer the tree. An
    // absent root is an empty stream (as tvix).
    return { items: service.getRecursive(digest, { signal }), encode: encodeDirectory };
  }

  /** Put (or PutPartial): the whole upload, then the response message. */
  async function openPut(call: Call, rpc: "Put" | "PutPartial"): Promise<MessageSource<Uint8Array>> {
    const { signal } = call;
    const partial = rpc === "PutPartial";
    if (partial && !(await supportsPartialUploads(service, { signal })))
      throw new ConnectError("this server's store takes no partial uploads (spec §3.6)", Code.Unimplemented);
    const putter = service.putMultipleStart({ signal, partial });
    let count = 0;
    let bytes = 0;
    const maxEntries = opts.maxEntriesPerDirectory ?? DEFAULT_MAX_ENTRIES_PER_DIRECTORY;
    let root: Digest;
    try {
      for await (const batch of call.messages()) {
        for (const message of batch) {
          count++;
          if (count > opts.maxDirectoriesPerUpload) {
            throw resourceExhausted(`upload exceeds the limit of ${opts.maxDirectoriesPerUpload} directories`);
          }
          let received;
          try {
            received = decodeReceived(message);
          } catch (e) {
            if (isCastoreError(e)) throw invalidArgument(`directory #${count - 1} of the upload: ${e.message}`);
            throw e;
          }
          const d = received.directory;
          const entries = d.directories.length + d.files.length + d.symlinks.length;
          if (entries > maxEntries) {
            throw resourceExhausted(
              `directory #${count - 1} of the upload has ${entries} entries, more than the limit of ${maxEntries} per directory`,
            );
          }
          bytes += received.bytes.length;
          if (bytes > opts.maxUploadBytes) {
            throw resourceExhausted(`upload exceeds the limit of ${opts.maxUploadBytes} bytes`);
          }
          // decoded strictly, so the received bytes are the canonical encoding: the putter may skip re-encoding
          await putter.put(received.directory, received.bytes);
        }
      }
      // A reset stream (the client cancelled or went away) ends the request
      // body like a clean end of stream in node's http2 compat layer; only
      // the 'aborted' event tells them apart. Never commit such an upload.
      if (signal.aborted) throw new ConnectError("the client cancelled the upload", Code.Canceled);
      root = await putter.close();
    } catch (e) {
      // A failed, refused or cancelled upload (the client went away, the
      // server is shutting down) stores nothing.
      await putter.abort(e).catch(() => {});
      throw e;
    }
    logger.debug({ rpc, root: root.hex, directories: count, bytes }, "upload stored");
    const response = toBinary(
      PutDirectoryResponseSchema,
      create(PutDirectoryResponseSchema, { rootDigest: root.bytes }),
    );
    return { items: [response], encode: (m) => m };
  }
}
