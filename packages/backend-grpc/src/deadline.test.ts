/**
 * Client deadlines (grpc-timeout) on the server: every unit and size clients
 * send is served (grpc-go sends `9999876u`, `1n`, `99999999H`), a deadline
 * that passes ends the call with DEADLINE_EXCEEDED, a malformed one is
 * INTERNAL. Calls are made with raw node:http2, so the status seen is the
 * server's, not a client's own timer.
 */
import * as http2 from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import {
  AbortError,
  type CallOptions,
  type Digest,
  type Directory,
  type DirectoryService,
  directoryDigest,
  directorySize,
  encodeDirectory,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
} from "@castore-ts/core";
import { rawGrpcCall } from "@castore-ts/testing";
import { encodeGetRequest } from "./grpc-js.test-helper.js";
import { memoryService } from "./memory-store.test-helper.js";
import {
  createDirectoryServiceServer,
  type DirectoryServiceServer,
  type DirectoryServiceServerOptions,
} from "./server.js";

const { DIRECTORY_A, EMPTY_BLOB_DIGEST } = fixtures;
const OK = 0;
const DEADLINE_EXCEEDED = 4;
const INTERNAL = 13;
const GET = "/tvix.castore.v1.DirectoryService/Get";
const PUT = "/tvix.castore.v1.DirectoryService/Put";
const HEALTH_CHECK = "/grpc.health.v1.Health/Check";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(
  service: DirectoryService,
  opts: Partial<DirectoryServiceServerOptions> = {},
): Promise<DirectoryServiceServer & { origin: string }> {
  const server = createDirectoryServiceServer(service, {
    listen: { host: "127.0.0.1", port: 0 },
    closeBackend: false,
    ...opts,
  });
  await server.listen();
  cleanups.push(() => server.close({ deadlineMs: 500 }));
  return Object.assign(server, { origin: `http://127.0.0.1:${(server.address as { port: number }).port}` });
}

const backendLatency = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A memory service with a slow backend: get takes `latencyMs`; getRecursive
 * yields the root, then waits for its signal and fails with AbortError, as a
 * backend does when its caller gives up. `recursiveSignal` resolves with the
 * signal of the last getRecursive once it is aborted.
 */
async function slowService(latencyMs: number) {
  const { service, store } = memoryService();
  const root = await service.put(DIRECTORY_A);
  let aborted!: (s: AbortSignal) => void;
  const recursiveSignal = new Promise<AbortSignal>((resolve) => (aborted = resolve));
  const slow: DirectoryService = Object.create(service, {
    // The server reads through getRecursiveEncoded where there is one: this service has only the slow getRecursive.
    getRecursiveEncoded: { value: undefined },
    get: {
      value: async (d: Digest, o?: CallOptions) => {
        await backendLatency(latencyMs);
        return service.get(d, o);
      },
    },
    getRecursive: {
      value: async function* (d: Digest, o?: CallOptions): AsyncGenerator<Directory> {
        const first = await service.get(d, o);
        if (first === undefined) return;
        yield first;
        await new Promise<void>((resolve) => o?.signal?.addEventListener("abort", () => resolve(), { once: true }));
        aborted(o!.signal!);
        throw new AbortError("aborted by the caller", { cause: o!.signal!.reason });
      },
    },
  });
  return { service: slow, store, root, recursiveSignal };
}

describe("grpc-timeout on the server", () => {
  it("every unit and size clients send is served, and the server keeps serving", async () => {
    const { service } = memoryService();
    const root = await service.put(DIRECTORY_A);
    const server = await serve(service);
    const get = encodeGetRequest(root.bytes, false);
    // Long enough for a Get of one directory: answered OK with it.
    for (const timeout of [
      "1H",
      "5M",
      "30S",
      "9999m",
      "9999876u",
      "99999999u",
      "2147483S",
      "2147484S",
      "3000000S",
      "5000000S",
      "99999999H",
      "99999999M",
    ]) {
      const answer = await rawGrpcCall(server.origin, { ":path": GET, "grpc-timeout": timeout }, { messages: [get] });
      expect(answer, timeout).toMatchObject({ grpcStatus: OK });
      expect(answer.messages, timeout).toHaveLength(1);
    }
    // Shorter than the call may take: OK or DEADLINE_EXCEEDED, a status either way.
    for (const timeout of ["0n", "1n", "999999n", "1500u", "1m", "0m", "0S"]) {
      const answer = await rawGrpcCall(server.origin, { ":path": GET, "grpc-timeout": timeout }, { messages: [get] });
      expect([OK, DEADLINE_EXCEEDED], `${timeout}: ${JSON.stringify(answer)}`).toContain(answer.grpcStatus);
    }
    const after = await rawGrpcCall(server.origin, { ":path": GET }, { messages: [get] });
    expect(after.grpcStatus).toBe(OK);
  });

  it("a deadline longer than a Node timer can wait (2³¹−1 ms) does not cut the call short", async () => {
    // Node fires a longer timer after 1 ms; the backend takes 30 ms per get.
    const { service, root } = await slowService(30);
    const server = await serve(service);
    for (const timeout of ["3000000S", "5000000S", "99999999H"]) {
      const answer = await rawGrpcCall(
        server.origin,
        { ":path": GET, "grpc-timeout": timeout },
        { messages: [encodeGetRequest(root.bytes, false)] },
      );
      expect(answer.grpcStatus, timeout).toBe(OK);
      const health = await rawGrpcCall(
        server.origin,
        { ":path": HEALTH_CHECK, "grpc-timeout": timeout },
        { messages: [new Uint8Array()] },
      );
      expect(health.grpcStatus, `health ${timeout}`).toBe(OK);
    }
  });

  it("a deadline that passes during a recursive Get ends it with DEADLINE_EXCEEDED, and the backend's read is aborted", async () => {
    const { service, root, recursiveSignal } = await slowService(0);
    const server = await serve(service);
    const answer = await rawGrpcCall(
      server.origin,
      { ":path": GET, "grpc-timeout": "100m" },
      { messages: [encodeGetRequest(root.bytes, true)] },
    );
    expect(answer.grpcStatus).toBe(DEADLINE_EXCEEDED);
    expect(answer.grpcMessage).toMatch(/deadline/);
    expect((await recursiveSignal).aborted).toBe(true);
  });

  it(
    "a stalled upload ends at its deadline with DEADLINE_EXCEEDED, even with the idle timer off; nothing is stored",
    { timeout: 15_000 },
    async () => {
      const { service, store } = memoryService();
      const server = await serve(service, { idleTimeoutMs: 0 });
      const answer = await rawGrpcCall(
        server.origin,
        { ":path": PUT, "grpc-timeout": "200m" },
        { messages: [encodeDirectory(DIRECTORY_A)], end: false },
      );
      expect(answer.grpcStatus).toBe(DEADLINE_EXCEEDED);
      expect(store.putClosureCalls).toBe(0);
      expect(store.map.size).toBe(0);
    },
  );

  it(
    "a Get whose request never comes ends at its deadline, even with the idle timer off",
    { timeout: 15_000 },
    async () => {
      const server = await serve(memoryService().service, { idleTimeoutMs: 0 });
      const answer = await rawGrpcCall(server.origin, { ":path": GET, "grpc-timeout": "200m" }, { end: false });
      expect(answer.grpcStatus).toBe(DEADLINE_EXCEEDED);
    },
  );

  it("a client that reads a recursive Get too slowly for its deadline gets DEADLINE_EXCEEDED, not OK after part of the tree", async () => {
    // A chain of about 3 MiB: more than HTTP/2 and the server buffer while the client does not read.
    const { service } = memoryService();
    const putter = service.putMultipleStart();
    let child: { digest: Digest; size: bigint } | undefined;
    const n = 3000;
    for (let i = 0; i < n; i++) {
      const files = Array.from({ length: 12 }, (_, f) =>
        makeFileNode(`file-${String(f).padStart(2, "0")}-${"x".repeat(20)}-${i}`, EMPTY_BLOB_DIGEST, f),
      );
      const d = makeDirectory({
        directories: child ? [makeDirectoryNode("child", child.digest, child.size)] : [],
        files,
      });
      await putter.put(d);
      child = { digest: directoryDigest(d), size: directorySize(d) };
    }
    const root = await putter.close();
    let backendSignal: AbortSignal | undefined;
    const watched: DirectoryService = Object.create(service, {
      getRecursiveEncoded: { value: undefined }, // the server reads through the watched getRecursive
      getRecursive: {
        value: (d: Digest, o?: CallOptions) => {
          backendSignal = o?.signal;
          return service.getRecursive(d, o);
        },
      },
    });
    const server = await serve(watched);
    const session = http2.connect(server.origin);
    cleanups.push(() => session.destroy());
    const stream = session.request({
      ":method": "POST",
      ":path": GET,
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": "300m",
    });
    const prefix = Buffer.alloc(5);
    const request = encodeGetRequest(root.bytes, true);
    prefix.writeUInt32BE(request.length, 1);
    stream.end(Buffer.concat([prefix, request]));
    stream.pause();
    let received = 0;
    stream.on("data", (c: Buffer) => (received += c.length));
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("trailers", resolve));
    // Read nothing until the server has given up on the call, then everything.
    await new Promise<void>((resolve) => {
      const wait = () =>
        backendSignal ? backendSignal.addEventListener("abort", () => resolve(), { once: true }) : setImmediate(wait);
      wait();
    });
    stream.resume();
    expect((await trailers)["grpc-status"]).toBe(String(DEADLINE_EXCEEDED));
    expect(received).toBeLessThan(3 * 1024 * 1024);
  });

  it("a malformed grpc-timeout is INTERNAL (as grpc-go and grpc-js answer it), for the DirectoryService and health alike", async () => {
    const { service } = memoryService();
    const root = await service.put(DIRECTORY_A);
    const server = await serve(service);
    for (const timeout of ["garbage", "1", "S", "-1S", "1.5S", "123456789m", "1s", "1S, 2S"]) {
      const get = await rawGrpcCall(
        server.origin,
        { ":path": GET, "grpc-timeout": timeout },
        { messages: [encodeGetRequest(root.bytes, false)] },
      );
      expect(get.grpcStatus, timeout).toBe(INTERNAL);
      expect(get.grpcMessage).toMatch(/malformed grpc-timeout/);
      const health = await rawGrpcCall(
        server.origin,
        { ":path": HEALTH_CHECK, "grpc-timeout": timeout },
        { messages: [new Uint8Array()] },
      );
      expect(health.grpcStatus, `health ${timeout}`).toBe(INTERNAL);
    }
  });
});
