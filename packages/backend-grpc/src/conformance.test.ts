/**
 * The conformance suite against client → server → a Map-backed store, over
 * TCP and over a Unix socket: a fresh store, server and client per scenario.
 * Directories and blobs (core's ChunkedBlobService over a Map BlobStore)
 * both travel over gRPC, and refs (castore.refs.v1): GrpcDirectoryService,
 * GrpcBlobService and GrpcRefStore against one server. (Not the memory backend: a backend's tests know no other backend.)
 */
import * as fs from "node:fs";
import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { ChunkedBlobService, MapRefStore, RefService } from "@castore-ts/core";
import { GRPC_REPAIR_UNSUPPORTED, GrpcDirectoryService } from "./grpc-directory-service.js";
import { GrpcBlobService } from "./grpc-blob-service.js";
import { GrpcRefStore } from "./grpc-ref-store.js";
import { memoryService, tempSocketPath } from "./memory-store.test-helper.js";
import { MapBlobStore } from "@castore-ts/conformance/broken";
import { createDirectoryServiceServer } from "./server.js";

for (const transport of ["tcp", "unix"] as const) {
  describeDirectoryService({
    name: `grpc over ${transport} → map store`,
    factory: async () => {
      const { store, service: backend } = memoryService();
      const blobStore = new MapBlobStore();
      const tmp = transport === "unix" ? tempSocketPath() : undefined;
      const backendBlobs = new ChunkedBlobService(blobStore);
      const server = createDirectoryServiceServer(backend, {
        listen: tmp ? { path: tmp.socket } : { host: "127.0.0.1", port: 0 },
        blobs: backendBlobs,
        refs: new RefService(new MapRefStore(), backend, backendBlobs),
      });
      await server.listen();
      const service = GrpcDirectoryService.fromUrl(server.url!);
      const blobs = GrpcBlobService.fromUrl(server.url!);
      // The server checks closures; the client's RefService leaves that to it (GrpcRefStore.checksClosure).
      const refs = new RefService(GrpcRefStore.fromUrl(server.url!), service, blobs);
      return {
        service,
        blobs,
        refs,
        corrupt: async (digest, bytes) => store.corrupt(digest, bytes),
        corruptChunk: async (digest, bytes) => blobStore.corruptChunk(digest, bytes),
        async teardown() {
          await Promise.all([service.close(), blobs.close(), refs.close()]);
          await server.close({ deadlineMs: 1000 });
          if (tmp) fs.rmSync(tmp.dir, { recursive: true, force: true });
        },
      };
    },
    capabilities: {
      corruption: true,
      repair: GRPC_REPAIR_UNSUPPORTED,
      gc: "a collection runs where the store is (castore gc --store <the server's store>); e2e's serve-gc.test runs gc.* through castore serve",
    },
  });
}
