/**
 * grpc.health.v1.Health against a real server, called with @grpc/grpc-js.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterEach, describe, expect, it } from "vitest";
import { BackendError, type CallOptions, type Digest, type Directory, type DirectoryService } from "@castore-ts/core";
import { grpcJsAddress, PROTO_ROOT } from "./grpc-js.test-helper.js";
import { memoryService } from "./memory-store.test-helper.js";
import { MapBlobService } from "./blob-store.test-helper.js";
import { createDirectoryServiceServer } from "./server.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type HealthClient = grpc.Client & {
  Check(req: { service: string }, cb: (err: grpc.ServiceError | null, res?: { status: string }) => void): void;
  Watch(req: { service: string }): grpc.ClientReadableStream<{ status: string }>;
};

function healthClient(url: string): HealthClient {
  const def = protoLoader.loadSync("grpc/health/v1/health.proto", {
    includeDirs: [PROTO_ROOT],
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const c = new pkg.grpc.health.v1.Health(
    grpcJsAddress(url),
    grpc.credentials.createInsecure(),
  ) as unknown as HealthClient;
  cleanups.push(() => c.close());
  return c;
}

function check(c: HealthClient, service: string): Promise<{ status?: string; code?: number }> {
  return new Promise((resolve) =>
    c.Check({ service }, (err, res) => resolve(err ? { code: err.code } : { status: res!.status })),
  );
}

async function serve(service: DirectoryService, healthPollMs = 50, blobs?: MapBlobService) {
  const server = createDirectoryServiceServer(service, {
    listen: { host: "127.0.0.1", port: 0 },
    blobs,
    healthPollMs,
    closeBackend: false,
  });
  await server.listen();
  cleanups.push(() => server.close({ deadlineMs: 500 }));
  return server;
}

/** A memory service whose get throws a BackendError while `down` is set. */
function flaky() {
  const { service } = memoryService();
  const state = { down: false };
  const wrapped: DirectoryService = Object.create(service, {
    get: {
      value: (digest: Digest, opts?: CallOptions): Promise<Directory | undefined> => {
        if (state.down) return Promise.reject(new BackendError("test", "engine unreachable", { unavailable: true }));
        return service.get(digest, opts);
      },
    },
  });
  return { service: wrapped, state };
}

describe("grpc.health.v1.Health", () => {
  it("Check: SERVING on a memory store, for the server and both castore services; NOT_FOUND for others", async () => {
    const server = await serve(memoryService().service);
    const c = healthClient(server.url!);
    expect(await check(c, "")).toEqual({ status: "SERVING" });
    expect(await check(c, "tvix.castore.v1.DirectoryService")).toEqual({ status: "SERVING" });
    expect(await check(c, "snix.castore.v1.DirectoryService")).toEqual({ status: "SERVING" });
    expect(await check(c, "no.such.Service")).toEqual({ code: grpc.status.NOT_FOUND });
  });

  it("Check: the BlobService names when blobs are served; NOT_SERVING follows the blob backend", async () => {
    const blobs = new MapBlobService();
    const down = { now: false };
    const stat = blobs.stat.bind(blobs);
    blobs.stat = (d, o) =>
      down.now ? Promise.reject(new BackendError("test", "blobs unreachable", { unavailable: true })) : stat(d, o);
    const withBlobs = healthClient((await serve(memoryService().service, 50, blobs)).url!);
    expect(await check(withBlobs, "tvix.castore.v1.BlobService")).toEqual({ status: "SERVING" });
    expect(await check(withBlobs, "snix.castore.v1.BlobService")).toEqual({ status: "SERVING" });
    down.now = true;
    expect(await check(withBlobs, "tvix.castore.v1.BlobService")).toEqual({ status: "NOT_SERVING" });
    expect(await check(withBlobs, "")).toEqual({ status: "NOT_SERVING" });
    expect(await check(withBlobs, "tvix.castore.v1.DirectoryService")).toEqual({ status: "SERVING" });
    const without = healthClient((await serve(memoryService().service)).url!);
    expect(await check(without, "tvix.castore.v1.BlobService")).toEqual({ code: grpc.status.NOT_FOUND });
  });

  it("Check: NOT_SERVING when the backend throws a BackendError", async () => {
    const { service, state } = flaky();
    state.down = true;
    const server = await serve(service);
    const c = healthClient(server.url!);
    expect(await check(c, "")).toEqual({ status: "NOT_SERVING" });
    state.down = false;
    expect(await check(c, "")).toEqual({ status: "SERVING" });
  });

  it("Watch: streams the status when the backend flips; ends on cancel", async () => {
    const { service, state } = flaky();
    const server = await serve(service);
    const c = healthClient(server.url!);
    const call = c.Watch({ service: "tvix.castore.v1.DirectoryService" });
    const seen: string[] = [];
    const waitFor = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`saw ${JSON.stringify(seen)}`)), 5_000);
        const onData = () => {
          if (seen.length >= n) {
            clearTimeout(t);
            call.off("data", onData);
            resolve();
          }
        };
        call.on("data", onData);
        onData();
      });
    call.on("data", (m) => seen.push(m.status));
    const ended = new Promise<number>((resolve) => call.on("error", (e: grpc.ServiceError) => resolve(e.code)));
    await waitFor(1);
    state.down = true;
    await waitFor(2);
    state.down = false;
    await waitFor(3);
    expect(seen).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
    call.cancel();
    expect(await ended).toBe(grpc.status.CANCELLED);
  });

  it("Watch: SERVICE_UNKNOWN for an unknown service; the stream ends at server shutdown", async () => {
    const server = await serve(memoryService().service);
    const c = healthClient(server.url!);
    const call = c.Watch({ service: "no.such.Service" });
    const first = new Promise<string>((resolve) => call.once("data", (m) => resolve(m.status)));
    const ended = new Promise<void>((resolve) => {
      call.on("status", () => resolve());
      call.on("error", () => {});
    });
    expect(await first).toBe("SERVICE_UNKNOWN");
    // a close deadline beyond the test timeout: only shutdown itself can end the stream in time
    await server.close({ deadlineMs: 120_000 });
    await ended;
  });
});
