/**
 * Opens stores by URL. Importing the backend packages registers their
 * schemes with core's registry (spec §6).
 */
import "@castore/backend-memory";
import "@castore/backend-lmdb";
import "@castore/backend-grpc";
import "@castore/backend-postgres";
import "@castore/backend-s3";
import { openDirectoryService, type DirectoryService, type SizeCheck } from "@castore/core";

export const DEFAULT_STORE = "lmdb://./castore-data";

export function openStore(url: string, opts: { sizeCheck?: SizeCheck } = {}): Promise<DirectoryService> {
  return openDirectoryService(url, opts);
}
