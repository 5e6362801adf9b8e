/**
 * Garbage collection through `castore serve` (spec §10): uploads, blobs and
 * refs go over gRPC to a real server process on an lmdb store, while this
 * process collects the same store (LMDB's lock file lets both write; each
 * deletion re-checks the last use the server recorded). The gc.* scenarios,
 * each on a fresh store and server.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import "@castore-ts/backend-lmdb";
import { GrpcBlobService, GrpcDirectoryService, GrpcRefStore } from "@castore-ts/backend-grpc";
import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { openGarbageCollector, RefService } from "@castore-ts/core";
import { startCastoreServe } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

describeDirectoryService(
  {
    name: "castore serve (lmdb), collected beside it",
    factory: async () => {
      const dir = mkdtempSync(join(tmpdir(), "castore-serve-gc-"));
      const store = `lmdb://${join(dir, "store")}`;
      const server = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", store]);
      const service = GrpcDirectoryService.fromUrl(server.url);
      const blobs = GrpcBlobService.fromUrl(server.url);
      const refs = new RefService(GrpcRefStore.fromUrl(server.url), service, blobs);
      const gc = await openGarbageCollector(store);
      return {
        service,
        blobs,
        refs,
        gc,
        async teardown() {
          await Promise.all([service.close(), blobs.close(), refs.close(), gc.close()]);
          await server.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  { filter: "gc." },
);
