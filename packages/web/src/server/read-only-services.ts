/**
 * The read side of the castore services for the web port, as connect-node
 * service implementations: DirectoryService Get (also recursive), BlobService
 * Stat and Read, castore.refs.v1 Get and List, all over the same core
 * services the gRPC port serves. Every write (DirectoryService Put,
 * BlobService Put, RefService Set and Delete) is refused with
 * PERMISSION_DENIED: the web port never changes the store.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  type BlobService,
  type CastoreError,
  Digest,
  type DirectoryService,
  isCastoreError,
  type RefService,
} from "@castore-ts/core";
import {
  BlobChunkSchema,
  BlobService as BlobServiceDesc,
  DirectoryService as DirectoryServiceDesc,
  GetRefResponseSchema,
  RefSchema,
  RefService as RefServiceDesc,
  StatBlobResponseSchema,
} from "@castore-ts/proto";

/** Largest BlobChunk sent: keeps one message well under a browser's comfort and the Connect default limits. */
export const MAX_SENT_CHUNK_BYTES = 1024 * 1024;

export interface ReadOnlyServices {
  directories: DirectoryService;
  /** Without: BlobService calls answer UNIMPLEMENTED. */
  blobs?: BlobService;
  /** Without: RefService calls answer UNIMPLEMENTED. */
  refs?: RefService;
}

const READ_ONLY = "the web port is read-only: use the gRPC port to write";

function refused(): never {
  throw new ConnectError(READ_ONLY, Code.PermissionDenied);
}

function digestOf(bytes: Uint8Array, where: string): Digest {
  if (bytes.length !== 32) {
    throw new ConnectError(
      `invalid digest length in ${where}: expected 32 bytes, got ${bytes.length}`,
      Code.InvalidArgument,
    );
  }
  return Digest.fromBytes(bytes);
}

/** The status for an error a core service raised (its message kept: it names what was wrong). */
export function statusOf(error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (!isCastoreError(error))
    return new ConnectError(`internal error: ${(error as Error)?.message ?? String(error)}`, Code.Internal);
  const e: CastoreError = error;
  switch (e.code) {
    case "VALIDATION":
    case "CLOSURE":
    case "INVALID_DIGEST":
      return new ConnectError(e.message, Code.InvalidArgument);
    case "NOT_FOUND":
      return new ConnectError(e.message, Code.NotFound);
    case "ABORTED":
      return new ConnectError(e.message, Code.Canceled);
    case "CONFLICT":
      return new ConnectError(e.message, Code.Aborted);
    default:
      return new ConnectError(e.message, Code.Internal);
  }
}

/** Runs a unary body with core errors turned into statuses. */
async function unary<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (e) {
    throw statusOf(e);
  }
}

/** A server stream with core errors turned into statuses. */
async function* streamed<T>(body: () => AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* body();
  } catch (e) {
    throw statusOf(e);
  }
}

/** Registers the read-only services on a connect router (under tvix.castore.v1 and castore.refs.v1). */
export function readOnlyRoutes(services: ReadOnlyServices): (router: ConnectRouter) => void {
  const { directories, blobs, refs } = services;
  return (router) => {
    router.service(DirectoryServiceDesc, {
      get: (req, ctx) =>
        streamed(async function* () {
          if (req.byWhat.case !== "digest")
            throw new ConnectError("GetDirectoryRequest has no by_what: set digest", Code.InvalidArgument);
          const digest = digestOf(req.byWhat.value, "GetDirectoryRequest");
          if (!req.recursive) {
            const directory = await directories.get(digest, { signal: ctx.signal });
            if (!directory) throw new ConnectError(`directory ${digest} not found`, Code.NotFound);
            yield directory;
            return;
          }
          // An absent root is an empty stream, as on the gRPC port (and tvix).
          yield* directories.getRecursive(digest, { signal: ctx.signal });
        }),
      put: refused,
    });
    if (blobs) {
      router.service(BlobServiceDesc, {
        stat: (req, ctx) =>
          unary(async () => {
            const digest = digestOf(req.digest, "StatBlobRequest");
            const stat = await blobs.stat(digest, { chunks: req.sendChunks, signal: ctx.signal });
            if (!stat) throw new ConnectError(`blob ${digest} not found`, Code.NotFound);
            const chunks = req.sendChunks
              ? (stat.chunks ?? []).map((c) => ({ digest: c.digest.bytes, size: BigInt(c.size) }))
              : [];
            return create(StatBlobResponseSchema, { chunks });
          }),
        read: (req, ctx) =>
          streamed(async function* () {
            const digest = digestOf(req.digest, "ReadBlobRequest");
            const bytes = await blobs.read(digest, { signal: ctx.signal });
            if (!bytes) throw new ConnectError(`blob ${digest} not found`, Code.NotFound);
            for await (const piece of bytes) {
              for (let at = 0; at < piece.length; at += MAX_SENT_CHUNK_BYTES) {
                yield create(BlobChunkSchema, { data: piece.subarray(at, at + MAX_SENT_CHUNK_BYTES) });
              }
            }
          }),
        put: refused,
      });
    }
    if (refs) {
      router.service(RefServiceDesc, {
        get: (req, ctx) =>
          unary(async () => {
            const digest = await refs.get(req.name, { signal: ctx.signal });
            if (!digest) throw new ConnectError(`no ref ${req.name}`, Code.NotFound);
            return create(GetRefResponseSchema, { digest: digest.bytes });
          }),
        list: (req, ctx) =>
          streamed(async function* () {
            for await (const ref of refs.list({ prefix: req.prefix, signal: ctx.signal })) {
              yield create(RefSchema, { name: ref.name, digest: ref.digest.bytes });
            }
          }),
        set: refused,
        delete: refused,
      });
    }
  };
}
