/**
 * Server metrics in process: backend errors by kind, status codes of failed
 * calls, unknown paths under one label.
 */
import * as http2 from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import { BackendError, Digest, type DirectoryService } from "@castore-ts/core";
import { memoryService } from "./memory-store.test-helper.js";
import { createServerMetrics } from "./metrics.js";
import { createDirectoryServiceServer } from "./server.js";
import { GrpcDirectoryService } from "./grpc-directory-service.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("server metrics", () => {
  it("count backend errors by kind and calls by status code", async () => {
    const { service } = memoryService();
    const failing: DirectoryService = Object.create(service, {
      get: { value: () => Promise.reject(new BackendError("test", "engine unreachable", { unavailable: true })) },
    });
    const metrics = createServerMetrics({ defaultMetrics: false });
    const server = createDirectoryServiceServer(failing, {
      listen: { host: "127.0.0.1", port: 0 },
      metrics,
      closeBackend: false,
    });
    await server.listen();
    cleanups.push(() => server.close({ deadlineMs: 500 }));
    expect(server.metrics).toBe(metrics);
    const client = GrpcDirectoryService.fromUrl(server.url!);
    cleanups.push(() => client.close());
    await expect(client.get(Digest.fromBytes(new Uint8Array(32)))).rejects.toThrow();

    const session = http2.connect(`http://${new URL(server.url!).host}`);
    session.on("error", () => {});
    cleanups.push(() => void session.destroy());
    const stream = session.request({
      ":method": "POST",
      ":path": "/no.such/Method",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.resume();
    stream.end();
    await new Promise((r) => stream.once("close", r));

    const text = await metrics.registry.metrics();
    expect(text).toContain('castore_backend_errors_total{kind="BACKEND"} 1');
    expect(text).toContain(
      'castore_grpc_server_handled_total{grpc_service="tvix.castore.v1.DirectoryService",grpc_method="Get",grpc_code="UNAVAILABLE"} 1',
    );
    expect(text).toContain(
      'castore_grpc_server_handled_total{grpc_service="unknown",grpc_method="unknown",grpc_code="UNIMPLEMENTED"} 1',
    );
    expect(text).not.toContain("process_cpu");
  });
});
