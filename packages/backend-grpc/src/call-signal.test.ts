/**
 * The server's shutdown signal lives as long as the server: calls must not
 * leave anything on it. Before CallSignal, every call combined its signal
 * with it through AbortSignal.any(), which on Node 20 keeps each combined
 * signal for good (nodejs/node#55351; about 40 MiB per million calls).
 */
import * as http2 from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { type CallOptions, type DirectoryService, fixtures } from "@castore-ts/core";
import { Code, ConnectError } from "@connectrpc/connect";
import { frameGrpcMessages, rawGrpcCall, waitFor } from "@castore-ts/testing";
import { CallSignal } from "./call-signal.js";
import { createDirectoryServiceHandler, silentLogger } from "./directory-service-handler.js";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import { encodeGetRequest } from "./grpc-js.test-helper.js";
import { healthRoutes } from "./health.js";
import { memoryService } from "./memory-store.test-helper.js";
import { heldBy } from "@castore-ts/testing";

const { DIRECTORY_A, DIRECTORY_B } = fixtures;
const CALLS = 50;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A memory service that tells when an upload starts. */
function watchedService() {
  const { service } = memoryService();
  let onStart: (() => void) | undefined;
  const watched: DirectoryService = Object.create(service, {
    putMultipleStart: {
      value: (o?: CallOptions) => {
        onStart?.();
        return service.putMultipleStart(o);
      },
    },
  });
  return { service: watched, nextUploadStarted: () => new Promise<void>((resolve) => (onStart = resolve)) };
}

async function listen(
  onRequest: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
): Promise<string> {
  const server = http2.createServer(onRequest);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  cleanups.push(() => {
    for (const s of sessions) s.destroy();
  });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

describe("the shutdown signal holds nothing for finished calls", () => {
  it("DirectoryService: after many Gets, Puts, failed and cancelled calls, no listener and no dependant is left on it", async () => {
    const shutdown = new AbortController();
    const { service, nextUploadStarted } = watchedService();
    const handler = createDirectoryServiceHandler(service, {
      maxMessageBytes: 4 * 1024 * 1024,
      maxDirectoriesPerUpload: 1000,
      maxUploadBytes: 1024 * 1024,
      serviceNames: ["tvix"],
      shutdownSignal: shutdown.signal,
      logger: silentLogger,
    });
    const origin = await listen(handler);
    const baseline = heldBy(shutdown.signal);
    expect(baseline).toEqual({ listeners: 0, dependants: 0 });

    const client = GrpcDirectoryService.fromUrl(origin.replace("http:", "grpc+http:"));
    cleanups.push(() => client.close());
    const root = await client.put(DIRECTORY_B).catch(() => undefined);
    expect(root).toBeUndefined(); // B refers to A, not sent: a failed Put
    const a = await client.put(DIRECTORY_A);
    for (let i = 0; i < CALLS; i++) {
      await client.put(DIRECTORY_A);
      expect(await client.get(a)).toEqual(DIRECTORY_A);
      for await (const d of client.getRecursive(a)) expect(d).toEqual(DIRECTORY_A);
      // An invalid request and a timed-out one.
      expect(
        (
          await rawGrpcCall(
            origin,
            { ":path": "/tvix.castore.v1.DirectoryService/Get" },
            { messages: [encodeGetRequest(undefined, false)] },
          )
        ).grpcStatus,
      ).toBe(3);
      expect(
        (
          await rawGrpcCall(
            origin,
            { ":path": "/tvix.castore.v1.DirectoryService/Get", "grpc-timeout": "1n" },
            { end: false },
          )
        ).grpcStatus,
      ).toBe(4);
    }
    // A call the client cancels mid-way.
    const session = http2.connect(origin);
    cleanups.push(() => session.destroy());
    const stalled = session.request({
      ":method": "POST",
      ":path": "/tvix.castore.v1.DirectoryService/Put",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stalled.on("error", () => {});
    const started = nextUploadStarted();
    stalled.write(frameGrpcMessages([new Uint8Array()]));
    await started;
    stalled.close(http2.constants.NGHTTP2_CANCEL);

    await waitFor(() => heldBy(shutdown.signal).listeners === baseline.listeners);
    expect(heldBy(shutdown.signal)).toEqual(baseline);
  });

  it("a running call still ends when the shutdown signal is aborted", async () => {
    const shutdown = new AbortController();
    const { service, nextUploadStarted } = watchedService();
    const handler = createDirectoryServiceHandler(service, {
      maxMessageBytes: 1024,
      maxDirectoriesPerUpload: 10,
      maxUploadBytes: 1024,
      serviceNames: ["tvix"],
      shutdownSignal: shutdown.signal,
      logger: silentLogger,
    });
    const origin = await listen(handler);
    const started = nextUploadStarted();
    const answer = rawGrpcCall(
      origin,
      { ":path": "/tvix.castore.v1.DirectoryService/Put" },
      { messages: [new Uint8Array()], end: false },
    );
    await started;
    shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
    expect(await answer).toMatchObject({ grpcStatus: Code.Unavailable, grpcMessage: "server is shutting down" });
  });

  it("health Watch: after many watches, no listener and no dependant is left on it", async () => {
    const shutdown = new AbortController();
    const { service } = memoryService();
    const origin = await listen(
      connectNodeAdapter({
        grpc: true,
        connect: false,
        grpcWeb: false,
        routes: healthRoutes(service, { serviceNames: ["tvix"], pollMs: 1000, shutdownSignal: shutdown.signal }),
      }),
    );
    const baseline = heldBy(shutdown.signal);
    const session = http2.connect(origin);
    session.on("error", () => {});
    cleanups.push(() => session.destroy());
    for (let i = 0; i < CALLS; i++) {
      const watch = session.request({
        ":method": "POST",
        ":path": "/grpc.health.v1.Health/Watch",
        "content-type": "application/grpc",
        te: "trailers",
      });
      watch.on("error", () => {});
      watch.end(frameGrpcMessages([new Uint8Array()]));
      await new Promise((resolve) => watch.once("data", resolve));
      const closed = new Promise((resolve) => watch.once("close", resolve));
      watch.close(http2.constants.NGHTTP2_CANCEL);
      await closed;
    }
    await waitFor(() => heldBy(shutdown.signal).listeners === baseline.listeners);
    expect(heldBy(shutdown.signal)).toEqual(baseline);
  });
});

describe("CallSignal", () => {
  it("aborts with the first source's reason, and detaches from every source then or at end()", () => {
    const a = new AbortController();
    const b = new AbortController();
    const call = new CallSignal().follow(a.signal).follow(b.signal);
    expect(heldBy(a.signal).listeners).toBe(1);
    b.abort("b first");
    expect(call.signal.reason).toBe("b first");
    expect(heldBy(a.signal).listeners).toBe(0);
    a.abort("a later");
    expect(call.signal.reason).toBe("b first");

    const c = new AbortController();
    const ended = new CallSignal().follow(c.signal);
    ended.end();
    expect(heldBy(c.signal).listeners).toBe(0);
    c.abort();
    expect(ended.signal.aborted).toBe(false);

    const already = new CallSignal().follow(AbortSignal.abort("was aborted"));
    expect(already.signal.reason).toBe("was aborted");
  });
});
