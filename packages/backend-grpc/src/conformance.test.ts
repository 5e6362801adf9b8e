/**
 * The conformance suite against client → server → a Map-backed store, over
 * TCP and over a Unix socket: a fresh store, server and client per scenario.
 * (Not the memory backend: a backend's tests know no other backend.)
 */
import * as fs from "node:fs";
import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { GRPC_REPAIR_UNSUPPORTED, GrpcDirectoryService } from "./grpc-directory-service.js";
import { memoryService, tempSocketPath } from "./memory-store.test-helper.js";
import { createDirectoryServiceServer } from "./server.js";

for (const transport of ["tcp", "unix"] as const) {
  describeDirectoryService({
    name: `grpc over ${transport} → map store`,
    factory: async () => {
      const { store, service: backend } = memoryService();
      const tmp = transport === "unix" ? tempSocketPath() : undefined;
      const server = createDirectoryServiceServer(backend, {
        listen: tmp ? { path: tmp.socket } : { host: "127.0.0.1", port: 0 },
      });
      await server.listen();
      const service = GrpcDirectoryService.fromUrl(server.url!);
      return {
        service,
        corrupt: async (digest, bytes) => store.corrupt(digest, bytes),
        async teardown() {
          await service.close();
          await server.close({ deadlineMs: 1000 });
          if (tmp) fs.rmSync(tmp.dir, { recursive: true, force: true });
        },
      };
    },
    capabilities: { corruption: true, repair: GRPC_REPAIR_UNSUPPORTED, blobs: "blob store not wired yet (issue 17)" },
  });
}
