/**
 * The BlobService of an S3 store: core's ChunkedBlobService (chunking,
 * hashing, verification, visibility) over an S3BlobStore (objects).
 */
import { ChunkedBlobService } from "@castore-ts/core";
import { S3BlobStore } from "./s3-blob-store.js";

/**
 * Chunk PUTs or GETs in flight per writer or reader, at most: S3 requests
 * are latency-bound, so more than core's default help, while 8 × 512 KiB
 * bounds the chunk bytes one transfer holds. Lower with the URL's
 * `concurrency`.
 */
export const S3_BLOB_PARALLELISM = 8;

export function s3BlobService(store: S3BlobStore): ChunkedBlobService {
  return new ChunkedBlobService(store, { parallelism: Math.min(store.objects.concurrency, S3_BLOB_PARALLELISM) });
}

/** Opens the blob service an `s3:` URL names (the same URL as for directories). */
export function openS3BlobService(url: URL | string): ChunkedBlobService {
  return s3BlobService(S3BlobStore.fromUrl(url));
}
