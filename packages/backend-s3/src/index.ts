/**
 * @castore-ts/backend-s3: castore directories in S3 or any S3-compatible server,
 * one object per closure plus one small index object per directory.
 * Importing this module registers the `s3:` URL scheme with core's
 * openDirectoryService, openBlobService, openRefStore and openGarbageCollector.
 */
import {
  registerBlobServiceScheme,
  registerCollectorScheme,
  registerDirectoryServiceScheme,
  registerRefStoreScheme,
} from "@castore-ts/core";
import { S3GarbageCollector, openS3RefStore } from "./s3-gc.js";
import { openS3BlobService } from "./s3-blobs.js";
import { S3DirectoryService } from "./s3-service.js";
import { S3_URL_EXAMPLE } from "./s3-url.js";

export {
  S3DirectoryService,
  DEFAULT_CONCURRENCY,
  DEFAULT_SOCKET_TIMEOUT_MS,
  type S3DirectoryServiceOptions,
} from "./s3-service.js";
export { S3BlobStore, LIST_PAGE_KEYS, S3_TOUCH_CHUNKS_PER_BLOB, type S3BlobStoreTuning } from "./s3-blob-store.js";
export { S3RefStore } from "./s3-refs.js";
export { S3CollectableStore, ClosurePins } from "./s3-collectable.js";
export {
  S3GarbageCollector,
  type ClosureObjectsDeleted,
  s3Protect,
  openS3RefStore,
  openS3RefService,
  s3RefService,
} from "./s3-gc.js";
export { S3_BLOB_PARALLELISM, s3BlobService, openS3BlobService } from "./s3-blobs.js";
export {
  S3Objects,
  connectionOptionsFromUrl,
  usedAtOf,
  DELETE_BATCH,
  type S3ConnectionOptions,
  type ListedObject,
} from "./s3-objects.js";
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

// Refs under refs/ (set protects the tree for a collection running meanwhile), and the garbage collector.
registerRefStoreScheme("s3", (url) => openS3RefStore(url));
registerCollectorScheme("s3", (url) => S3GarbageCollector.fromUrl(url));
