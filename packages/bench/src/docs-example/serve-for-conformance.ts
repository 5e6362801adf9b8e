import { createDirectoryServiceServer, type DirectoryServiceServer } from "@castore-ts/backend-grpc";
import type { DirectoryService } from "@castore-ts/core";

/** Serves any DirectoryService over gRPC, so that `castore conformance URL` (or a tvix/snix client) can test it. */
export async function serveForConformance(service: DirectoryService, port = 8000): Promise<DirectoryServiceServer> {
  const server = createDirectoryServiceServer(service, { listen: { host: "127.0.0.1", port } });
  await server.listen();
  console.log(`serving; now run: castore conformance ${server.url}`);
  return server; // server.close() stops it and closes the service
}
