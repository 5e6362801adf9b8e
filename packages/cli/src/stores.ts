/**
 * Opens stores by URL. Importing the backend packages registers their
 * schemes with core's registry (spec §6).
 */
import "@castore-ts/backend-memory";
import "@castore-ts/backend-lmdb";
import "@castore-ts/backend-grpc";
import "@castore-ts/backend-postgres";
import "@castore-ts/backend-s3";
import {
  type BlobService,
  knownBlobSchemes,
  knownRefSchemes,
  openBlobService,
  openRefStore,
  openRefStoreWithProtect,
  type OpenedRefStore,
  type RefStore,
  openDirectoryService,
  parseStoreUrl,
  schemeOf,
  type DirectoryService,
  type SizeCheck,
} from "@castore-ts/core";

export const DEFAULT_STORE = "lmdb://./castore-data";

export function openStore(url: string, opts: { sizeCheck?: SizeCheck } = {}): Promise<DirectoryService> {
  return openDirectoryService(url, opts);
}

/** The store's blobs, or undefined when its scheme stores no blobs (yet). */
export async function openBlobsIfAny(url: string): Promise<BlobService | undefined> {
  return knownBlobSchemes().includes(schemeOf(parseStoreUrl(url))) ? openBlobService(url) : undefined;
}

/** The store's ref store, or undefined when its scheme keeps no refs (yet). */
export async function openRefStoreIfAny(url: string): Promise<RefStore | undefined> {
  return knownRefSchemes().includes(schemeOf(parseStoreUrl(url))) ? openRefStore(url) : undefined;
}

/**
 * For a RefService over the store: its ref store with, on a store that
 * collects garbage, the `protect` that `set` must use (spec §10.2); undefined
 * when its scheme keeps no refs.
 */
export async function openRefsIfAny(url: string): Promise<OpenedRefStore | undefined> {
  return knownRefSchemes().includes(schemeOf(parseStoreUrl(url))) ? openRefStoreWithProtect(url) : undefined;
}
