import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { ChunkedBlobService, RefService } from "@castore-ts/core";
import { LmdbBlobStore, LmdbDirectoryService, LmdbRefStore } from "./index.js";

describeDirectoryService({
  name: "lmdb",
  factory: async () => {
    const dir = mkdtempSync(join(tmpdir(), "castore-lmdb-conformance-"));
    // Directories and blobs in one store directory, as `lmdb://` opens them.
    const service = await LmdbDirectoryService.open(join(dir, "store"));
    const blobStore = LmdbBlobStore.open(join(dir, "store"));
    const blobs = new ChunkedBlobService(blobStore);
    const refs = new RefService(LmdbRefStore.open(join(dir, "store")), service, blobs);
    return {
      service,
      blobs,
      refs,
      teardown: async () => {
        await Promise.all([service.close(), blobs.close(), refs.close()]);
        rmSync(dir, { recursive: true, force: true });
      },
      // Bad bytes written straight through lmdb, replacing what is stored.
      corrupt: async (digest, bytes) => {
        service.store.directories.putSync(digest.bytes, bytes);
      },
      corruptChunk: async (digest, bytes) => {
        blobStore.chunks.putSync(digest.bytes, bytes);
      },
    };
  },
  capabilities: { corruption: true },
});
