/**
 * The BlobService over gRPC, on real sockets: our client against our server
 * (TCP and Unix socket), grpc-js against our server, our client against a
 * grpc-js server; statuses; flow control; cancelled uploads; corruption.
 */
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CorruptionError, Digest, openBlobService } from "@castore-ts/core";
import { waitFor } from "@castore-ts/testing";
import { GrpcBlobService } from "./grpc-blob-service.js";
import { createDirectoryServiceServer, type DirectoryServiceServer } from "./server.js";
import { memoryService, tempSocketPath } from "./memory-store.test-helper.js";
import { MapBlobService, testBytes } from "./blob-store.test-helper.js";
import {
  type GrpcJsBlobClient,
  grpcJsPut,
  grpcJsRead,
  grpcJsStat,
  loadBlobServices,
  startGrpcJsBlobServer,
} from "./blob-grpc-js.test-helper.js";
import { grpcJsAddress } from "./grpc-js.test-helper.js";
import { grpcCodeOf } from "./status.js";
import "./index.js";

const MiB = 1024 * 1024;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function serveBlobs(
  blobs: MapBlobService | undefined,
  transport: "tcp" | "unix" = "tcp",
  opts: { metrics?: boolean; authTokens?: string[]; idleTimeoutMs?: number; maxMessageBytes?: number } = {},
): Promise<DirectoryServiceServer> {
  const tmp = transport === "unix" ? tempSocketPath() : undefined;
  const server = createDirectoryServiceServer(memoryService().service, {
    listen: tmp ? { path: tmp.socket } : { host: "127.0.0.1", port: 0 },
    blobs,
    metrics: opts.metrics ? { defaultMetrics: false } : undefined,
    authTokens: opts.authTokens,
    idleTimeoutMs: opts.idleTimeoutMs,
    maxMessageBytes: opts.maxMessageBytes,
  });
  await server.listen();
  cleanups.push(async () => {
    await server.close({ deadlineMs: 1000 });
    if (tmp) fs.rmSync(tmp.dir, { recursive: true, force: true });
  });
  return server;
}

function clientOf(server: DirectoryServiceServer, opts: ConstructorParameters<typeof GrpcBlobService>[1] = {}) {
  const c = GrpcBlobService.fromUrl(server.url!, opts);
  cleanups.push(() => c.close());
  return c;
}

async function put(c: GrpcBlobService, bytes: Uint8Array, pieceSize = bytes.length || 1) {
  const w = c.openWriter();
  for (let at = 0; at < bytes.length; at += pieceSize) await w.write(bytes.subarray(at, at + pieceSize));
  return w.close();
}

async function collect(stream: AsyncIterable<Uint8Array> | undefined): Promise<Buffer> {
  if (!stream) throw new Error("no stream");
  const parts: Uint8Array[] = [];
  for await (const p of stream) parts.push(p);
  return Buffer.concat(parts);
}

describe.each(["tcp", "unix"] as const)("our client against our server over %s", (transport) => {
  let blobs: MapBlobService;
  let server: DirectoryServiceServer;
  let c: GrpcBlobService;
  beforeAll(async () => {
    blobs = new MapBlobService(64 * 1024);
    const tmp = transport === "unix" ? tempSocketPath() : undefined;
    server = createDirectoryServiceServer(memoryService().service, {
      listen: tmp ? { path: tmp.socket } : { host: "127.0.0.1", port: 0 },
      blobs,
    });
    await server.listen();
    c = GrpcBlobService.fromUrl(server.url!);
  });
  afterAll(async () => {
    await c.close();
    await server.close({ deadlineMs: 1000 });
  });

  it("round trips sizes 0, 1, chunk boundary ±1 and a few MiB; different piece sizes give one digest", async () => {
    for (const size of [0, 1, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, 3 * MiB + 17]) {
      const bytes = testBytes(size, size + 1);
      const written = await put(c, bytes, 100_000);
      expect(written).toEqual({ digest: Digest.of(bytes), size });
      expect((await put(c, bytes, 7777)).digest.equals(written.digest)).toBe(true);
      expect(Buffer.compare(await collect(await c.read(written.digest)), Buffer.from(bytes))).toBe(0);
      expect((await c.stat(written.digest))?.size).toBe(size);
    }
  });

  it("stat lists the chunks; a chunk is readable by its digest; ranged reads at chunk boundaries", async () => {
    const bytes = testBytes(300 * 1024, 9);
    const { digest } = await put(c, bytes);
    const stat = await c.stat(digest, { chunks: true });
    expect(stat?.size).toBe(bytes.length);
    expect(stat?.chunks?.map((ch) => ch.size)).toEqual([65536, 65536, 65536, 65536, 45056]);
    const second = stat!.chunks![1]!;
    expect(Buffer.compare(await collect(await c.read(second.digest)), Buffer.from(bytes.subarray(65536, 131072)))).toBe(
      0,
    );
    for (const [offset, length] of [
      [0, 1],
      [65535, 2],
      [65536, 65536],
      [100_000, 200_000],
      [299 * 1024, 10 * 1024],
      [bytes.length, 5],
      [10, bytes.length - 20],
      [1, bytes.length],
    ] as const) {
      const got = await collect(await c.read(digest, { offset, length }));
      expect(Buffer.compare(got, Buffer.from(bytes.subarray(offset, offset + length)))).toBe(0);
    }
  });

  it("a read that needs every chunk is one Read call; a ranged read reads each chunk it needs", async () => {
    const bytes = testBytes(300 * 1024, 19);
    const { digest } = await put(c, bytes);
    const readCalls = async (offset?: number, length?: number) => {
      const before = blobs.readsEnded;
      const got = await collect(await c.read(digest, { offset, length }));
      expect(
        Buffer.compare(got, Buffer.from(bytes.subarray(offset ?? 0, (offset ?? 0) + (length ?? bytes.length)))),
      ).toBe(0);
      return blobs.readsEnded - before;
    };
    expect(await readCalls()).toBe(1);
    expect(await readCalls(5, bytes.length - 10)).toBe(1);
    // Chunks of 64 KiB: [100 000, 200 000) lies in the second, third and fourth.
    expect(await readCalls(100_000, 100_000)).toBe(3);
  });

  it("absent blobs: read and stat are undefined, has is false; present ones true", async () => {
    const absent = Digest.of(new TextEncoder().encode("never stored"));
    const { digest } = await put(c, testBytes(10, 3));
    expect(await c.read(absent)).toBeUndefined();
    expect(await c.stat(absent)).toBeUndefined();
    expect(await c.has([digest, absent, Digest.of(new Uint8Array(0))])).toEqual([true, false, true]);
  });
});

describe("statuses", () => {
  it("grpc-js: Stat and Read of an absent blob are NOT_FOUND, a digest not 32 bytes INVALID_ARGUMENT", async () => {
    const server = await serveBlobs(new MapBlobService());
    const services = loadBlobServices();
    const client = new services.tvix(
      grpcJsAddress(server.url!),
      grpc.credentials.createInsecure(),
    ) as unknown as GrpcJsBlobClient;
    cleanups.push(() => client.close());
    const absent = Digest.of(new TextEncoder().encode("absent")).bytes;
    expect((await grpcJsStat(client, absent)).error?.code).toBe(grpc.status.NOT_FOUND);
    expect((await grpcJsRead(client, absent)).error?.code).toBe(grpc.status.NOT_FOUND);
    const short = new Uint8Array(31);
    const stat = await grpcJsStat(client, short);
    expect(stat.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(stat.error?.details).toContain("expected 32 bytes, got 31");
    expect((await grpcJsRead(client, short)).error?.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("without blobs, the BlobService is UNIMPLEMENTED", async () => {
    const server = await serveBlobs(undefined);
    const c = clientOf(server);
    const error = await c.stat(Digest.of(new Uint8Array([1]))).catch((e: unknown) => e);
    expect(grpcCodeOf(error)).toBe(grpc.status.UNIMPLEMENTED);
  });

  it("bearer auth covers the BlobService", async () => {
    const server = await serveBlobs(new MapBlobService(), "tcp", { authTokens: ["s3cret"] });
    const anonymous = clientOf(server);
    const error = await anonymous.has([Digest.of(new Uint8Array([1]))]).catch((e: unknown) => e);
    expect(grpcCodeOf(error)).toBe(grpc.status.UNAUTHENTICATED);
    const authed = clientOf(server, { authToken: "s3cret" });
    const { digest } = await put(authed, testBytes(1000));
    expect(await authed.has([digest])).toEqual([true]);
  });
});

describe("grpc-js client against our server", () => {
  it("Put, Stat with chunks, Read in messages of at most 1 MiB, under both service names", async () => {
    const blobs = new MapBlobService(512 * 1024, 3 * MiB);
    const server = await serveBlobs(blobs, "tcp", { metrics: true });
    const services = loadBlobServices();
    for (const name of ["tvix", "snix"] as const) {
      const client = new services[name](
        grpcJsAddress(server.url!),
        grpc.credentials.createInsecure(),
      ) as unknown as GrpcJsBlobClient;
      cleanups.push(() => client.close());
      const bytes = testBytes(5 * MiB + 3, name.length);
      const putResult = await grpcJsPut(client, bytes, 3 * MiB);
      expect(putResult.error).toBeUndefined();
      expect(Buffer.from(putResult.digest!).equals(Buffer.from(Digest.of(bytes).bytes))).toBe(true);
      const stat = await grpcJsStat(client, Digest.of(bytes).bytes, true);
      expect(stat.chunks?.map((ch) => Number(ch.size))).toEqual([
        ...Array(10).fill(512 * 1024),
        5 * MiB + 3 - 10 * 512 * 1024,
      ]);
      const read = await grpcJsRead(client, Digest.of(bytes).bytes);
      expect(read.error).toBeUndefined();
      expect(read.bytes.equals(Buffer.from(bytes))).toBe(true);
      expect(Math.max(...read.sizes)).toBeLessThanOrEqual(MiB);
    }
    const text = await server.metrics!.registry.metrics();
    expect(text).toMatch(/castore_blob_received_bytes_total \d+/);
    expect(text).toContain(`castore_blob_received_bytes_total ${2 * (5 * MiB + 3)}`);
    expect(text).toContain(`castore_blob_sent_bytes_total ${2 * (5 * MiB + 3)}`);
    expect(text).toMatch(/castore_blob_requests_total\{grpc_method="Read",grpc_code="OK"\} 2/);
  });
});

describe("our client against a grpc-js server", () => {
  it("writes, stats and reads (full and ranged), verifying what it reads", async () => {
    const blobs = new MapBlobService(256 * 1024);
    const js = await startGrpcJsBlobServer(blobs);
    cleanups.push(() => js.close());
    const c = GrpcBlobService.fromUrl(`grpc+http://${js.address}`);
    cleanups.push(() => c.close());
    const bytes = testBytes(2 * MiB + 5, 4);
    const { digest } = await put(c, bytes, 3 * MiB);
    expect(digest.equals(Digest.of(bytes))).toBe(true);
    expect((await c.stat(digest))?.size).toBe(bytes.length);
    expect((await collect(await c.read(digest))).equals(Buffer.from(bytes))).toBe(true);
    const ranged = await collect(await c.read(digest, { offset: 300_000, length: 1_000_000 }));
    expect(ranged.equals(Buffer.from(bytes.subarray(300_000, 1_300_000)))).toBe(true);
    expect(await c.read(Digest.of(new Uint8Array([9])))).toBeUndefined();
  });
});

describe("flow control", () => {
  it("a reader that stops reading holds the backend's read: the server does not buffer the blob", async () => {
    const blobs = new MapBlobService(MiB, 256 * 1024);
    const server = await serveBlobs(blobs);
    const size = 64 * MiB;
    const c = clientOf(server);
    const { digest } = await put(c, testBytes(size, 5), 4 * MiB);
    // A raw HTTP/2 client that reads nothing: only flow control paces the server.
    const session = http2.connect(`http://127.0.0.1:${server.address!.kind === "tcp" ? server.address!.port : 0}`);
    cleanups.push(() => void session.destroy());
    const stream = session.request({
      ":method": "POST",
      ":path": "/tvix.castore.v1.BlobService/Read",
      "content-type": "application/grpc",
      te: "trailers",
    });
    const request = Buffer.concat([Buffer.from([0x0a, 32]), Buffer.from(digest.bytes)]);
    const frame = Buffer.alloc(5 + request.length);
    frame.writeUInt32BE(request.length, 1);
    frame.set(request, 5);
    stream.end(frame);
    stream.pause();
    // The client's window is used up and the backend's stream waits at a yield for the server to pull.
    await waitFor(() => stream.state.localWindowSize === 0 && blobs.parked, "the stream to stall on flow control");
    expect(blobs.yielded).toBeGreaterThan(0);
    // Out of the backend: the window (64 KiB), one write and one queued message (≤ 1 MiB each), one piece.
    expect(blobs.yielded).toBeLessThan(4 * MiB);
    // Reading on moves it on; a cancel then stops the backend's read.
    stream.resume();
    const before = blobs.yielded;
    await waitFor(() => blobs.yielded > before + 8 * MiB, "the read to go on once the client reads");
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor(() => blobs.readsEnded === 1, "the backend's read to end");
    expect(blobs.yielded).toBeLessThan(size);
  });

  it.each([
    ["a chunk list: one Read, cut at its chunks", true],
    ["no chunk list: one streamed Read", false],
  ])("our client pausing a read also holds the server (%s)", async (_, chunkLists) => {
    const blobs = new MapBlobService(MiB, 256 * 1024);
    blobs.sendChunkLists = chunkLists;
    const server = await serveBlobs(blobs);
    const c = clientOf(server);
    const size = 64 * MiB;
    const { digest } = await put(c, testBytes(size, 6), 4 * MiB);
    const it = (await c.read(digest))![Symbol.asyncIterator]();
    await it.next();
    await waitFor(() => blobs.parked && blobs.yielded > MiB, "the backend to wait for the server to pull");
    // Bounded by the windows (1 MiB stream, client buffers) and the server's one write + one queued message.
    expect(blobs.yielded).toBeLessThan(8 * MiB);
    await it.return!();
    await waitFor(() => blobs.readsEnded === 1, "the backend's read to end");
    expect(blobs.yielded).toBeLessThan(size);
  });
});

describe("uploads", () => {
  it("abort mid-Put stores nothing, and the server aborts its writer", async () => {
    const blobs = new MapBlobService();
    const server = await serveBlobs(blobs);
    const c = clientOf(server);
    const w = c.openWriter();
    await w.write(testBytes(3 * MiB, 7));
    await waitFor(() => server.activeCalls === 1, "the Put call to reach the server");
    await w.abort();
    await waitFor(() => server.activeCalls === 0, "the Put call to end");
    expect(blobs.manifests.size).toBe(0);
    expect(await c.has([Digest.of(testBytes(3 * MiB, 7))])).toEqual([false]);
  });

  it("a user signal aborting mid-Put stores nothing and rejects the writer", async () => {
    const blobs = new MapBlobService();
    const server = await serveBlobs(blobs);
    const c = clientOf(server);
    const controller = new AbortController();
    const w = c.openWriter({ signal: controller.signal });
    await w.write(testBytes(MiB, 8));
    controller.abort();
    await expect(w.close()).rejects.toMatchObject({ code: "ABORTED" });
    await waitFor(() => server.activeCalls === 0, "the Put call to end");
    expect(blobs.manifests.size).toBe(0);
  });
});

describe("upload backpressure", () => {
  it("a backend that stops taking writes holds our client's writer: it accepts a bounded amount ahead", async () => {
    const blobs = new MapBlobService();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    let received = 0;
    const openWriter = blobs.openWriter.bind(blobs);
    blobs.openWriter = (opts) => {
      const inner = openWriter(opts);
      return {
        ...inner,
        async write(bytes) {
          received += bytes.length;
          await gate;
          return inner.write(bytes);
        },
      };
    };
    const server = await serveBlobs(blobs);
    const c = clientOf(server);
    const piece = testBytes(MiB, 17);
    const total = 32 * MiB;
    const w = c.openWriter();
    const progress = { accepted: 0, waiting: false };
    const writing = (async () => {
      for (let at = 0; at < total; at += MiB) {
        progress.waiting = true;
        await w.write(piece);
        progress.waiting = false;
        progress.accepted += MiB;
      }
      return w.close();
    })();
    await waitFor(() => received > 0 && progress.waiting, "the writer to wait on a held backend");
    // the client's queue (4 messages), the replay buffer (1 MiB), the HTTP/2 windows and socket buffers: not 32 MiB
    expect(progress.accepted).toBeLessThan(16 * MiB);
    release();
    const written = await writing;
    expect(written.size).toBe(total);
    expect(received).toBe(total);
  });
});

describe("upload limits", () => {
  it("a Put stalled past the idle timeout ends with DEADLINE_EXCEEDED and stores nothing", async () => {
    const blobs = new MapBlobService();
    const server = await serveBlobs(blobs, "tcp", { idleTimeoutMs: 200 });
    const c = clientOf(server);
    const w = c.openWriter();
    await w.write(testBytes(100_000, 13));
    await waitFor(() => server.activeCalls === 1, "the Put call to reach the server");
    await waitFor(() => server.activeCalls === 0, "the idle Put to be ended");
    const error = await w.close().catch((e: unknown) => e);
    expect(grpcCodeOf(error)).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(blobs.manifests.size).toBe(0);
  });

  it("a BlobChunk over the server's message limit is RESOURCE_EXHAUSTED; nothing is stored", async () => {
    const blobs = new MapBlobService();
    const server = await serveBlobs(blobs, "tcp", { maxMessageBytes: 64 * 1024 });
    const services = loadBlobServices();
    const client = new services.tvix(
      grpcJsAddress(server.url!),
      grpc.credentials.createInsecure(),
    ) as unknown as GrpcJsBlobClient;
    cleanups.push(() => client.close());
    const result = await grpcJsPut(client, testBytes(200 * 1024, 14), 100 * 1024);
    expect(result.error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(blobs.manifests.size).toBe(0);
    // our client sends at most 1 MiB per message; a server taking 64 KiB is refused the same way
    const error = await put(clientOf(server), testBytes(100 * 1024, 15)).catch((e: unknown) => e);
    expect(grpcCodeOf(error)).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });
});

describe("backend errors", () => {
  it("a CorruptionError of the backend mid-Read ends the call with its status; our client raises CorruptionError", async () => {
    const blobs = new MapBlobService(64 * 1024, 16 * 1024);
    blobs.sendChunkLists = false;
    const server = await serveBlobs(blobs);
    const c = clientOf(server);
    const { digest } = await put(c, testBytes(200 * 1024, 16));
    const read = blobs.read.bind(blobs);
    blobs.read = async (d, o) => {
      const inner = await read(d, o);
      return (
        inner &&
        (async function* () {
          let n = 0;
          for await (const piece of inner) {
            if (n++ === 2) throw new CorruptionError(`chunk of ${d} hashes to something else`);
            yield piece;
          }
        })()
      );
    };
    const error = await collect(await c.read(digest)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptionError);
    expect(grpcCodeOf(error)).toBe(grpc.status.INTERNAL);
    const services = loadBlobServices();
    const client = new services.tvix(
      grpcJsAddress(server.url!),
      grpc.credentials.createInsecure(),
    ) as unknown as GrpcJsBlobClient;
    cleanups.push(() => client.close());
    const viaGrpcJs = await grpcJsRead(client, digest.bytes);
    expect(viaGrpcJs.error?.code).toBe(grpc.status.INTERNAL);
    expect(viaGrpcJs.bytes.length).toBe(32 * 1024);
  });
});

describe("corruption", () => {
  it("a server sending other bytes for a chunk makes the read fail with CorruptionError", async () => {
    const blobs = new MapBlobService(64 * 1024);
    const server = await serveBlobs(blobs);
    const c = clientOf(server);
    const bytes = testBytes(200 * 1024, 10);
    const { digest } = await put(c, bytes);
    const chunks = (await blobs.stat(digest, { chunks: true }))!.chunks!;
    const bad = testBytes(chunks[1]!.size, 99);
    blobs.corruptChunk(chunks[1]!.digest, bad);
    const it = (await c.read(digest))![Symbol.asyncIterator]();
    // the first chunk is good and yielded; the second is never yielded
    expect((await it.next()).value).toEqual(bytes.subarray(0, 64 * 1024));
    await expect(it.next()).rejects.toBeInstanceOf(CorruptionError);
    // a ranged read inside the bad chunk fails too
    await expect(collect(await c.read(digest, { offset: 70_000, length: 10 }))).rejects.toBeInstanceOf(CorruptionError);
  });

  it("without a chunk list, stat reads to count and checks; a corrupted blob ends the read with CorruptionError", async () => {
    const blobs = new MapBlobService(64 * 1024);
    blobs.sendChunkLists = false;
    const server = await serveBlobs(blobs);
    const c = clientOf(server);
    const { digest } = await put(c, testBytes(100 * 1024, 11));
    const chunk = blobs.manifests.get(digest.hex)![0]!;
    expect(await c.stat(digest)).toEqual({ size: 100 * 1024 });
    expect(await c.stat(Digest.of(new Uint8Array([7])))).toBeUndefined();
    blobs.corruptChunk(chunk.digest, testBytes(chunk.size, 12));
    await expect(collect(await c.read(digest))).rejects.toBeInstanceOf(CorruptionError);
    await expect(c.stat(digest)).rejects.toBeInstanceOf(CorruptionError);
  });
});

describe("registration", () => {
  it("openBlobService opens grpc+http, grpc+unix URLs", async () => {
    const blobs = new MapBlobService();
    for (const transport of ["tcp", "unix"] as const) {
      const server = await serveBlobs(blobs, transport);
      const c = await openBlobService(server.url!);
      cleanups.push(() => c.close());
      expect(c).toBeInstanceOf(GrpcBlobService);
      const { digest } = await put(c as GrpcBlobService, testBytes(5, 1));
      expect(await c.has([digest])).toEqual([true]);
    }
  });
});
