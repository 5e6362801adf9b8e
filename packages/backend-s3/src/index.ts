/**
 * @castore-ts/backend-s3: castore directories in S3 or any S3-compatible server,
 * one object per closure plus one small index object per directory.
 * Importing this module registers the `s3:` URL scheme with core's
 * openDirectoryService and openBlobService.
 */
import { registerBlobServiceScheme, registerDirectoryServiceScheme } from "@castore-ts/core";
import { openS3BlobService } from "./s3-blobs.js";
import { S3DirectoryService } from "./s3-service.js";
import { S3_URL_EXAMPLE } from "./s3-url.js";

export {
  S3DirectoryService,
  DEFAULT_CONCURRENCY,
  DEFAULT_SOCKET_TIMEOUT_MS,
  type S3DirectoryServiceOptions,
} from "./s3-service.js";
export { S3BlobStore, LIST_PAGE_KEYS, type S3BlobStoreTuning } from "./s3-blob-store.js";
export { S3_BLOB_PARALLELISM, s3BlobService, openS3BlobService } from "./s3-blobs.js";
export { S3Objects, connectionOptionsFromUrl, type S3ConnectionOptions } from "./s3-objects.js";
export { MANIFEST_MAGIC, encodeManifest, decodeManifest } from "./blob-manifest.js";
export {
  parseS3Url,
  normalizePrefix,
  S3_URL_EXAMPLE,
  type S3Url,
  type S3Location,
  type ConditionalWrites,
} from "./s3-url.js";
export { BackoffRetryStrategy, DEFAULT_RETRY, type RetryOptions } from "./retry.js";
export { RequestCounter } from "./request-counter.js";
export {
  CLOSURE_MAGIC,
  INDEX_MAGIC,
  layoutClosure,
  encodeIndex,
  decodeIndex,
  readFrames,
  type ClosureLayout,
  type IndexRecord,
  type Placement,
} from "./closure-format.js";

registerDirectoryServiceScheme("s3", S3_URL_EXAMPLE, (url, opts) =>
  S3DirectoryService.fromUrl(url, { sizeCheck: opts.sizeCheck }),
);

// The same URL stores blobs (spec §8): chunks and manifests under blobs/ beside the directories.
registerBlobServiceScheme("s3", (url) => openS3BlobService(url));
