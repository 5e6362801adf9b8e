import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { ChunkedBlobService, RefService } from "@castore-ts/core";
import {
  LMDB_CHUNK_PUTS_IN_FLIGHT,
  LmdbBlobStore,
  LmdbDirectoryService,
  LmdbRefStore,
  openLmdbCollector,
} from "./index.js";

describeDirectoryService({
  name: "lmdb",
  factory: async () => {
    const dir = mkdtempSync(join(tmpdir(), "castore-lmdb-conformance-"));
    const path = join(dir, "store");
    // Directories, blobs, refs and the collector in one store directory, as `lmdb://` opens them.
    const service = await LmdbDirectoryService.open(path);
    const blobStore = LmdbBlobStore.open(path);
    const blobs = new ChunkedBlobService(blobStore, { putParallelism: LMDB_CHUNK_PUTS_IN_FLIGHT });
    const refStore = LmdbRefStore.open(path);
    const refs = new RefService(refStore, service, blobs);
    const gc = openLmdbCollector(path);
    return {
      service,
      blobs,
      refs,
      gc,
      teardown: async () => {
        await Promise.all([service.close(), blobs.close(), refs.close(), gc.close()]);
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
