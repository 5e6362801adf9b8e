/**
 * castore's sync extension service (castore.sync.v1.SyncService, spec §3.5):
 * FindMissing answers, in one call, which of a list of directories and blobs
 * the server's store lacks, so a client sends only those. Directories are
 * asked of the store in one batch where it can (DirectoryService.has), blobs
 * with the BlobService's has (which counts a blob found as used, spec §10.2).
 * Its answer also says whether the store takes partial uploads (PutPartial,
 * served beside Put in directory-service-handler.ts, spec §3.6).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type BlobService, type DirectoryService, hasDirectories, supportsPartialUploads } from "@castore-ts/core";
import { FindMissingRequestSchema, FindMissingResponseSchema } from "@castore-ts/proto";
import { requestDigest } from "./blob-service-handler.js";
import type { MessageSource } from "./message-batcher.js";
import { invalidArgument } from "./status.js";
import { type Call, type Route, singleMessage } from "./grpc-call-handler.js";

/** The service's path prefix. */
export const SYNC_SERVICE = "castore.sync.v1.SyncService";

/** The partial upload's path (proto/castore/sync/v1/sync.proto), routed with Put in directory-service-handler.ts. */
export const PUT_PARTIAL_PATH = `${SYNC_SERVICE}/PutPartial`;

/** The SyncService's routes, by path. Without a blob service every asked blob is missing. */
export function syncRoutes(directories: DirectoryService, blobs: BlobService | undefined): Map<string, Route> {
  return new Map([[`/${SYNC_SERVICE}/FindMissing`, { rpc: "FindMissing", open: openFindMissing }]]);

  async function openFindMissing(call: Call): Promise<MessageSource<Uint8Array>> {
    const message = await singleMessage(call.messages(), "FindMissing", FindMissingRequestSchema.name);
    let request;
    try {
      request = fromBinary(FindMissingRequestSchema, message);
    } catch (e) {
      throw invalidArgument(`request is not a valid ${FindMissingRequestSchema.name}: ${(e as Error).message}`);
    }
    const dirs = request.directories.map((b, i) => requestDigest(b, `FindMissingRequest.directories[${i}]`));
    const blobDigests = request.blobs.map((b, i) => requestDigest(b, `FindMissingRequest.blobs[${i}]`));
    const opts = { signal: call.signal };
    const [dirsPresent, blobsPresent, partialUploads] = await Promise.all([
      hasDirectories(directories, dirs, opts),
      blobs ? blobs.has(blobDigests, opts) : blobDigests.map(() => false),
      supportsPartialUploads(directories, opts),
    ]);
    const response = create(FindMissingResponseSchema, {
      missingDirectories: dirs.filter((_, i) => !dirsPresent[i]).map((d) => d.bytes),
      missingBlobs: blobDigests.filter((_, i) => !blobsPresent[i]).map((d) => d.bytes),
      partialUploads,
    });
    return { items: [toBinary(FindMissingResponseSchema, response)], encode: (m) => m };
  }
}
