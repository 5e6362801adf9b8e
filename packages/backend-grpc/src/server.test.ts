/**
 * Server behaviour: backpressure, cancellation, status codes of backend
 * failures, graceful shutdown, TLS, Unix sockets.
 */
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import {
  BackendError,
  type CallOptions,
  type Digest,
  type Directory,
  type DirectoryService,
  directoryDigest,
  directorySize,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  openDirectoryService,
} from "@castore-ts/core";
import { rawGrpcCall, waitFor } from "@castore-ts/testing";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import { encodeGetRequest, grpcJsAddress, rawClient, rawGet } from "./grpc-js.test-helper.js";
import { memoryService, tempSocketPath } from "./memory-store.test-helper.js";
import { createDirectoryServiceServer, type DirectoryServiceServer } from "./server.js";
import "./index.js";

const { DIRECTORY_A, DIRECTORY_B, EMPTY_BLOB_DIGEST } = fixtures;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(
  service: DirectoryService,
  opts: Partial<Parameters<typeof createDirectoryServiceServer>[1]> = {},
) {
  const server = createDirectoryServiceServer(service, { listen: { host: "127.0.0.1", port: 0 }, ...opts });
  await server.listen();
  cleanups.push(() => server.close({ deadlineMs: 500 }));
  return server;
}

function client(server: DirectoryServiceServer, opts = {}) {
  const c = GrpcDirectoryService.fromUrl(server.url!, opts);
  cleanups.push(() => c.close());
  return c;
}

/** A chain of `n` directories of about 1 KiB each, leaves to root. */
function bigChain(n: number): Directory[] {
  const out: Directory[] = [];
  let child: { digest: Digest; size: bigint } | undefined;
  for (let i = 0; i < n; i++) {
    const files = [];
    for (let f = 0; f < 12; f++)
      files.push(makeFileNode(`file-${String(f).padStart(2, "0")}-${"x".repeat(20)}-${i}`, EMPTY_BLOB_DIGEST, f));
    const d = makeDirectory({
      directories: child ? [makeDirectoryNode("child", child.digest, child.size)] : [],
      files,
    });
    out.push(d);
    child = { digest: directoryDigest(d), size: directorySize(d) };
  }
  return out;
}

/** Wraps a service: counts what getRecursive hands out and whether its iterator was closed. */
function instrumented(inner: DirectoryService) {
  const stats = { yielded: 0, finished: false, signalAborted: false };
  const service: DirectoryService = {
    get: (d, o) => inner.get(d, o),
    put: (d, o) => inner.put(d, o),
    putMultipleStart: (o) => inner.putMultipleStart(o),
    close: () => inner.close(),
    async *getRecursive(root: Digest, opts?: CallOptions) {
      try {
        for await (const d of inner.getRecursive(root, opts)) {
          stats.yielded++;
          yield d;
        }
      } finally {
        stats.finished = true;
        stats.signalAborted = opts?.signal?.aborted ?? false;
      }
    },
  };
  return { service, stats };
}

async function uploadChain(service: DirectoryService, chain: Directory[]): Promise<Digest> {
  const putter = service.putMultipleStart();
  for (const d of chain) await putter.put(d);
  return putter.close();
}

describe("server", () => {
  it("a slow client holds the backend's read (backpressure), and its cancel stops it", async () => {
    const { service: mem } = memoryService();
    const chain = bigChain(3000);
    const root = await uploadChain(mem, chain);
    const { service, stats } = instrumented(mem);
    const server = await serve(service);
    // A raw HTTP/2 client that reads nothing: only flow control paces the server.
    const session = http2.connect(`http://127.0.0.1:${server.address!.kind === "tcp" ? server.address!.port : 0}`);
    cleanups.push(() => void session.destroy());
    const stream = session.request({
      ":method": "POST",
      ":path": "/tvix.castore.v1.DirectoryService/Get",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const request = encodeGetRequest(root.bytes, true);
    const frame = Buffer.alloc(5 + request.length);
    frame.writeUInt32BE(request.length, 1);
    frame.set(request, 5);
    stream.end(frame);
    stream.pause();
    await new Promise((r) => setTimeout(r, 500));
    // About 3 MiB of tree; what left the backend is bounded by windows and buffers (~1 MiB + 64 KiB batch).
    expect(stats.yielded).toBeGreaterThan(0);
    expect(stats.yielded).toBeLessThan(1600);
    const before = stats.yielded;
    await new Promise((r) => setTimeout(r, 300));
    expect(stats.yielded).toBe(before);
    // Cancel: the server stops the backend's walk.
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor(() => stats.finished);
    expect(stats.finished).toBe(true);
    expect(stats.yielded).toBeLessThan(chain.length);
  });

  it("our client breaking out of getRecursive stops the server's read", async () => {
    const { service: mem } = memoryService();
    const chain = bigChain(3000);
    const root = await uploadChain(mem, chain);
    const { service, stats } = instrumented(mem);
    const c = client(await serve(service));
    for await (const _ of c.getRecursive(root)) break;
    await waitFor(() => stats.finished);
    expect(stats.finished).toBe(true);
    expect(stats.signalAborted).toBe(true);
    expect(stats.yielded).toBeLessThan(chain.length);
  });

  it("backend failures: INTERNAL, or UNAVAILABLE when unreachable; the client names the server", async () => {
    const failing = (unavailable: boolean): DirectoryService => ({
      async get() {
        throw new BackendError("stub", "engine down", { unavailable });
      },
      async put() {
        throw new BackendError("stub", "engine down", { unavailable });
      },
      // eslint-disable-next-line require-yield
      async *getRecursive() {
        throw new BackendError("stub", "engine down", { unavailable });
      },
      putMultipleStart() {
        return {
          async put() {},
          async close(): Promise<Digest> {
            throw new BackendError("stub", "commit failed", { unavailable });
          },
          async abort() {},
        };
      },
      async close() {},
    });
    for (const unavailable of [false, true]) {
      const server = await serve(failing(unavailable));
      const raw = rawClient(grpcJsAddress(server.url!));
      cleanups.push(() => raw.close());
      const expected = unavailable ? grpc.status.UNAVAILABLE : grpc.status.INTERNAL;
      for (const recursive of [false, true]) {
        const { error } = await rawGet(raw, encodeGetRequest(directoryDigest(DIRECTORY_A).bytes, recursive));
        expect(error?.code).toBe(expected);
        expect(error?.details).toMatch(/stub: engine down/);
      }
      const c = client(server);
      const e = await c.get(directoryDigest(DIRECTORY_A)).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(BackendError);
      expect((e as BackendError).message).toContain(server.url!);
      expect((e as BackendError).unavailable).toBe(unavailable);
      const putError = await c.put(DIRECTORY_A).catch((x: unknown) => x);
      expect(putError).toMatchObject({ code: "BACKEND", unavailable });
      expect((putError as Error).message).toMatch(/commit failed/);
    }
  });

  it("an unknown method is UNIMPLEMENTED", async () => {
    const server = await serve(memoryService().service);
    const raw = rawClient(grpcJsAddress(server.url!));
    cleanups.push(() => raw.close());
    const result = await new Promise<grpc.ServiceError | null>((resolve) =>
      raw.makeUnaryRequest(
        "/tvix.castore.v1.DirectoryService/List",
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        (err) => resolve(err),
      ),
    );
    expect(result?.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("a Get with no request message, or two, is INVALID_ARGUMENT naming the count", async () => {
    const { service } = memoryService();
    const root = await service.put(DIRECTORY_A);
    const server = await serve(service);
    const origin = `http://127.0.0.1:${(server.address as { port: number }).port}`;
    const request = encodeGetRequest(root.bytes, false);
    for (const messages of [[], [request, request], [request, request, request]]) {
      const answer = await rawGrpcCall(origin, { ":path": "/tvix.castore.v1.DirectoryService/Get" }, { messages });
      expect(answer.grpcStatus, `${messages.length} messages`).toBe(grpc.status.INVALID_ARGUMENT);
      expect(answer.grpcMessage).toBe(`a Get takes exactly one GetDirectoryRequest message, got ${messages.length}`);
      expect(answer.messages).toHaveLength(0);
    }
    const one = await rawGrpcCall(
      origin,
      { ":path": "/tvix.castore.v1.DirectoryService/Get" },
      { messages: [request] },
    );
    expect(one.grpcStatus).toBe(grpc.status.OK);
  });

  it("serviceNames limits the names served", async () => {
    const server = await serve(memoryService().service, { serviceNames: ["snix"] });
    const raw = rawClient(grpcJsAddress(server.url!));
    cleanups.push(() => raw.close());
    const tvix = await rawGet(raw, encodeGetRequest(directoryDigest(DIRECTORY_A).bytes, true), "tvix");
    expect(tvix.error?.code).toBe(grpc.status.UNIMPLEMENTED);
    const snix = await rawGet(raw, encodeGetRequest(directoryDigest(DIRECTORY_A).bytes, true), "snix");
    expect(snix.error).toBeUndefined();
  });

  it("concurrent calls share one HTTP/2 connection", async () => {
    const server = await serve(memoryService().service);
    const c = client(server);
    await c.put(DIRECTORY_A);
    const calls = [];
    for (let i = 0; i < 20; i++) {
      calls.push(c.get(directoryDigest(DIRECTORY_A)));
      calls.push(
        (async () => {
          const out = [];
          for await (const d of c.getRecursive(directoryDigest(DIRECTORY_A))) out.push(d);
          return out;
        })(),
      );
      const putter = c.putMultipleStart();
      calls.push(putter.put(DIRECTORY_A).then(() => putter.close()));
    }
    await Promise.all(calls);
    expect(server.openConnections).toBe(1);
  });

  describe("graceful shutdown", () => {
    it("lets a running call finish, refuses new connections, then closes the backend", async () => {
      const { service: mem, store } = memoryService();
      const chain = bigChain(1500);
      const root = await uploadChain(mem, chain);
      const server = createDirectoryServiceServer(mem, { listen: { host: "127.0.0.1", port: 0 } });
      await server.listen();
      const c = GrpcDirectoryService.fromUrl(server.url!);
      cleanups.push(() => c.close());
      let n = 0;
      let closed = false;
      let closing: Promise<void> | undefined;
      for await (const _ of c.getRecursive(root)) {
        n++;
        if (n === 10) {
          closing = server.close({ deadlineMs: 10_000 }).then(() => void (closed = true));
          await new Promise((r) => setTimeout(r, 50));
          // a new connection is refused
          const other = GrpcDirectoryService.fromUrl(server.url!, { connectTimeoutMs: 1000 });
          await expect(other.get(root)).rejects.toMatchObject({ code: "BACKEND" });
          await other.close();
        }
        if (n % 100 === 0) await new Promise((r) => setTimeout(r, 5)); // a slowish reader
      }
      // every directory arrived: the running call was drained, not cancelled at the deadline
      expect(n).toBe(chain.length);
      await closing;
      expect(closed).toBe(true);
      expect(store.closed).toBe(true);
    });

    it("cancels what is still running at the deadline; closeBackend: false keeps the backend open", async () => {
      const { service: mem, store } = memoryService();
      const chain = bigChain(1500);
      const root = await uploadChain(mem, chain);
      const { service, stats } = instrumented(mem);
      const server = createDirectoryServiceServer(service, {
        listen: { host: "127.0.0.1", port: 0 },
        closeBackend: false,
      });
      await server.listen();
      const c = GrpcDirectoryService.fromUrl(server.url!);
      cleanups.push(() => c.close());
      const it = c.getRecursive(root)[Symbol.asyncIterator]();
      await it.next(); // then stop reading: the call cannot finish
      const start = Date.now();
      await server.close({ deadlineMs: 300 });
      // waited for the deadline (a timer never fires early), then cancelled the call
      expect(Date.now() - start).toBeGreaterThanOrEqual(250);
      expect(stats.finished).toBe(true);
      expect(store.closed).toBe(false);
      // the client sees the call fail, not hang
      await expect(
        (async () => {
          for (;;) if ((await it.next()).done) break;
        })(),
      ).rejects.toMatchObject({ code: "BACKEND" });
    });

    it("close() before listen() and twice is fine", async () => {
      const server = createDirectoryServiceServer(memoryService().service, { listen: { port: 0 } });
      await server.close();
      await server.close();
    });
  });

  describe("Unix sockets", () => {
    it("replaces a stale socket file left by a dead server, and refuses a live one", async () => {
      const tmp = tempSocketPath();
      cleanups.push(() => fs.rmSync(tmp.dir, { recursive: true, force: true }));
      // a process that binds the socket and is killed: the file stays
      const child = spawn(process.execPath, [
        "-e",
        `require("net").createServer().listen(${JSON.stringify(tmp.socket)}, () => console.log("up"))`,
      ]);
      await new Promise((r) => child.stdout.once("data", r));
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      expect(fs.existsSync(tmp.socket)).toBe(true);

      const server = createDirectoryServiceServer(memoryService().service, { listen: { path: tmp.socket } });
      await server.listen();
      cleanups.push(() => server.close());
      expect(server.url).toBe(`grpc+unix://${tmp.socket}`);
      const c = await openDirectoryService(server.url!);
      cleanups.push(() => c.close());
      expect((await c.put(DIRECTORY_A)).hex).toBe(directoryDigest(DIRECTORY_A).hex);

      const second = createDirectoryServiceServer(memoryService().service, { listen: { path: tmp.socket } });
      await expect(second.listen()).rejects.toMatchObject({ code: "EADDRINUSE" });
    });
  });

  describe("TLS", () => {
    function selfSigned(dir: string): { cert: Buffer; key: Buffer; certPath: string } | undefined {
      const key = path.join(dir, "key.pem");
      const cert = path.join(dir, "cert.pem");
      try {
        execFileSync(
          "openssl",
          [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
          ],
          { stdio: "ignore" },
        );
      } catch {
        return undefined;
      }
      return { cert: fs.readFileSync(cert), key: fs.readFileSync(key), certPath: cert };
    }

    it("serves grpc+https with a certificate; our client and grpc-js connect with its CA", async (ctx) => {
      const tmp = tempSocketPath();
      cleanups.push(() => fs.rmSync(tmp.dir, { recursive: true, force: true }));
      const tls = selfSigned(tmp.dir);
      if (!tls) return ctx.skip("openssl is not available to make a self-signed certificate");
      const server = await serve(memoryService().service, { tls: { cert: tls.cert, key: tls.key } });
      expect(server.url).toMatch(/^grpc\+https:\/\/127\.0\.0\.1:\d+$/);
      const c = await openDirectoryService(`${server.url}?ca=${encodeURIComponent(tls.certPath)}`);
      cleanups.push(() => c.close());
      const putter = c.putMultipleStart();
      await putter.put(DIRECTORY_A);
      await putter.put(DIRECTORY_B);
      expect((await putter.close()).hex).toBe(directoryDigest(DIRECTORY_B).hex);
      expect(await c.get(directoryDigest(DIRECTORY_B))).toEqual(DIRECTORY_B);

      const raw = new grpc.Client(grpcJsAddress(server.url!), grpc.credentials.createSsl(tls.cert));
      cleanups.push(() => raw.close());
      const { messages, error } = await rawGet(raw, encodeGetRequest(directoryDigest(DIRECTORY_B).bytes, true));
      expect(error).toBeUndefined();
      expect(messages.length).toBe(2);

      // without the CA the certificate is not trusted
      const untrusted = await openDirectoryService(server.url!);
      cleanups.push(() => untrusted.close());
      await expect(untrusted.get(directoryDigest(DIRECTORY_A))).rejects.toMatchObject({ code: "BACKEND" });
    });

    it("maxConnections counts TLS connections: one more is refused (UNAVAILABLE) before its handshake", async (ctx) => {
      const tmp = tempSocketPath();
      cleanups.push(() => fs.rmSync(tmp.dir, { recursive: true, force: true }));
      const tls = selfSigned(tmp.dir);
      if (!tls) return ctx.skip("openssl is not available to make a self-signed certificate");
      const server = await serve(memoryService().service, { tls: { cert: tls.cert, key: tls.key }, maxConnections: 1 });
      const url = `${server.url}?ca=${encodeURIComponent(tls.certPath)}`;
      const first = GrpcDirectoryService.fromUrl(url);
      cleanups.push(() => first.close());
      const root = await first.put(DIRECTORY_A);
      const second = GrpcDirectoryService.fromUrl(url);
      cleanups.push(() => second.close());
      const e = await second.get(root).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: "BACKEND", unavailable: true });
      expect(await first.get(root)).toEqual(DIRECTORY_A);
    });
  });
});
