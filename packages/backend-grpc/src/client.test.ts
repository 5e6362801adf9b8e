/**
 * Client behaviour: stream checks against misbehaving servers (a grpc-js
 * server sending raw bytes), unreachable servers, cancellation, the bounded
 * upload queue, URLs.
 */
import * as net from "node:net";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import {
  AbortError,
  BackendError,
  CorruptionError,
  type Directory,
  type DirectoryService,
  directoryDigest,
  encodeDirectory,
  fixtures,
  InvalidUrlError,
  makeDirectory,
  makeFileNode,
  openDirectoryService,
} from "@castore-ts/core";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import { parseGrpcUrl } from "./grpc-url.js";
import { grpcCodeOf } from "./status.js";
import { memoryService } from "./memory-store.test-helper.js";
import { createDirectoryServiceServer } from "./server.js";
import "./index.js";

const { DIRECTORY_A, DIRECTORY_B, DIRECTORY_C, DIRECTORY_D, DIRECTORY_WITH_KEEP, EMPTY_BLOB_DIGEST } = fixtures;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const identity = (b: Buffer) => b;

/** A grpc-js server whose Get answers with whatever raw messages `respond` returns for the request bytes. */
async function rawServer(respond: (request: Buffer) => Uint8Array[] | { stall: true }): Promise<string> {
  const server = new grpc.Server();
  server.addService(
    {
      Get: {
        path: "/tvix.castore.v1.DirectoryService/Get",
        requestStream: false,
        responseStream: true,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    {
      Get(call: grpc.ServerWritableStream<Buffer, Buffer>) {
        const answer = respond(call.request);
        if ("stall" in answer) return; // never answer
        for (const m of answer) call.write(Buffer.from(m));
        call.end();
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  cleanups.push(() => void server.forceShutdown());
  return `grpc+http://127.0.0.1:${port}`;
}

function open(url: string, opts = {}): GrpcDirectoryService {
  const c = GrpcDirectoryService.fromUrl(url, opts);
  cleanups.push(() => c.close());
  return c;
}

async function collect(service: DirectoryService, root: ReturnType<typeof directoryDigest>): Promise<Directory[]> {
  const out: Directory[] = [];
  for await (const d of service.getRecursive(root)) out.push(d);
  return out;
}

const enc = encodeDirectory;
const dA = directoryDigest(DIRECTORY_A);
const dB = directoryDigest(DIRECTORY_B);
const dD = directoryDigest(DIRECTORY_D);

describe("client stream checks (spec §5) against a misbehaving server", () => {
  it("get: a directory other than the one asked for is a CorruptionError", async () => {
    const c = open(await rawServer(() => [enc(DIRECTORY_B)]));
    const e = await c.get(dA).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CorruptionError);
    expect((e as Error).message).toMatch(/requested directory af1349b9.*but received 8701f472/);
  });

  it("get: an invalid directory, unknown fields, or bytes that are no Directory are CorruptionErrors", async () => {
    const unsorted = makeDirectory({
      files: [makeFileNode("b", EMPTY_BLOB_DIGEST, 0), makeFileNode("a", EMPTY_BLOB_DIGEST, 0)],
    });
    for (const [bytes, why] of [
      [enc(unsorted), /failed validation: files not sorted/],
      [Uint8Array.from([0x48, 0x01]), /unknown field 9/],
      [Uint8Array.from([0xff, 0xff, 0xff]), /not a valid Directory/],
    ] as const) {
      const c = open(await rawServer(() => [bytes]));
      const digest = directoryDigest(unsorted);
      const e = await c.get(digest).catch((x: unknown) => x);
      expect(e, String(why)).toBeInstanceOf(CorruptionError);
      expect((e as Error).message).toMatch(why);
    }
  });

  it("get: a non-canonical but equivalent encoding (explicit defaults, as protobufjs writes) is accepted", async () => {
    // WITH_KEEP: file ".keep", empty blob, size 0, executable false: written out explicitly
    const name = Buffer.from(".keep");
    const node = [0x0a, name.length, ...name, 0x12, 32, ...EMPTY_BLOB_DIGEST.bytes, 0x18, 0x00, 0x20, 0x00];
    const bytes = Uint8Array.from([0x12, node.length, ...node]);
    const c = open(await rawServer(() => [bytes]));
    expect(await c.get(directoryDigest(DIRECTORY_WITH_KEEP))).toEqual(DIRECTORY_WITH_KEEP);
  });

  it("getRecursive: a directory nobody referred to is a CorruptionError", async () => {
    const c = open(await rawServer(() => [enc(DIRECTORY_B), enc(DIRECTORY_C)]));
    await expect(collect(c, dB)).rejects.toThrow(/unexpected directory .*not referred to/);
    await expect(collect(c, dB)).rejects.toBeInstanceOf(CorruptionError);
  });

  it("getRecursive: the same directory twice is a CorruptionError", async () => {
    const c = open(await rawServer(() => [enc(DIRECTORY_B), enc(DIRECTORY_A), enc(DIRECTORY_A)]));
    await expect(collect(c, dB)).rejects.toThrow(/sent twice/);
  });

  it("getRecursive: an end of stream while children are still expected is a CorruptionError", async () => {
    const c = open(await rawServer(() => [enc(DIRECTORY_D), enc(DIRECTORY_A)]));
    await expect(collect(c, dD)).rejects.toThrow(/premature end of stream .*still expected 1/);
  });

  it("getRecursive: a root other than the one asked for is a CorruptionError", async () => {
    const c = open(await rawServer(() => [enc(DIRECTORY_A)]));
    await expect(collect(c, dB)).rejects.toBeInstanceOf(CorruptionError);
  });

  it("getRecursive in any root-to-leaves order is accepted (not only breadth first)", async () => {
    // D → [a: A, b: B → a: A]: D, B, A is depth first
    const c = open(await rawServer(() => [enc(DIRECTORY_D), enc(DIRECTORY_B), enc(DIRECTORY_A)]));
    expect((await collect(c, dD)).map((d) => directoryDigest(d).hex)).toEqual([dD.hex, dB.hex, dA.hex]);
  });
});

describe("client getRecursive as an iterator", () => {
  it("next() calls made at once get the directories in order, then the end", async () => {
    const c = open(await rawServer(() => [enc(DIRECTORY_D), enc(DIRECTORY_B), enc(DIRECTORY_A)]));
    const it = c.getRecursive(dD)[Symbol.asyncIterator]();
    const results = await Promise.all([it.next(), it.next(), it.next(), it.next()]);
    expect(results.map((r) => (r.done ? "end" : directoryDigest(r.value).hex))).toEqual([
      dD.hex,
      dB.hex,
      dA.hex,
      "end",
    ]);
  });

  it("return() ends the read: later next() calls are done", async () => {
    const c = open(await rawServer(() => [enc(DIRECTORY_D), enc(DIRECTORY_B), enc(DIRECTORY_A)]));
    const it = c.getRecursive(dD)[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    expect(await it.return!()).toEqual({ done: true, value: undefined });
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });
});

describe("client getRecursiveEncoded", () => {
  it("yields getRecursive's directories, each with its canonical bytes and their digest, checked alike", async () => {
    const c = open(await rawServer(() => [enc(DIRECTORY_D), enc(DIRECTORY_B), enc(DIRECTORY_A)]));
    const got = [];
    for await (const e of c.getRecursiveEncoded(dD)) got.push(e);
    expect(got.map((e) => e.digest.hex)).toEqual([dD.hex, dB.hex, dA.hex]);
    for (const e of got) {
      expect(e.bytes).toEqual(enc(e.directory));
      expect(directoryDigest(e.directory).hex).toBe(e.digest.hex);
    }
    const cut = open(await rawServer(() => [enc(DIRECTORY_D), enc(DIRECTORY_A)]));
    const read = async () => {
      for await (const _ of cut.getRecursiveEncoded(dD));
    };
    await expect(read()).rejects.toThrow(/premature end of stream/);
  });

  it("bytes sent non-canonically (explicit defaults) come back canonical, with the canonical digest", async () => {
    const name = Buffer.from(".keep");
    const node = [0x0a, name.length, ...name, 0x12, 32, ...EMPTY_BLOB_DIGEST.bytes, 0x18, 0x00, 0x20, 0x00];
    const c = open(await rawServer(() => [Uint8Array.from([0x12, node.length, ...node])]));
    const root = directoryDigest(DIRECTORY_WITH_KEEP);
    const got = [];
    for await (const e of c.getRecursiveEncoded(root)) got.push(e);
    expect(got).toHaveLength(1);
    expect(got[0].bytes).toEqual(enc(DIRECTORY_WITH_KEEP));
    expect(got[0].digest.hex).toBe(root.hex);
  });
});

describe("client connection handling", () => {
  it("a server that is not there: BackendError naming the address, unavailable, no hang", async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const c = open(`grpc+http://127.0.0.1:${port}`);
    const e = await c.get(dA).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BackendError);
    expect((e as BackendError).message).toContain(`grpc+http://127.0.0.1:${port}`);
    expect((e as BackendError).unavailable).toBe(true);
    // no hang: failed on the refused connect, not after the connect timeout
    expect((e as BackendError).message).not.toMatch(/connect timeout/);
    await expect(c.put(DIRECTORY_A)).rejects.toMatchObject({ code: "BACKEND", unavailable: true });
  });

  it("a peer that accepts TCP but never speaks HTTP/2: BackendError after the connect timeout", async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    cleanups.push(() => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => silent.close(() => r()));
    });
    const port = (silent.address() as net.AddressInfo).port;
    const c = open(`grpc+http://127.0.0.1:${port}?connectTimeoutMs=300`);
    const e = await c.get(dA).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BackendError);
    expect((e as BackendError).message).toMatch(/127\.0\.0\.1/);
    // ended by the 300 ms connect timeout (nothing else ends a call to a silent peer)
    expect((e as BackendError).message).toMatch(/connect timeout.*within 300 ms/);
  });

  it("AbortSignal: a call to a server that does not answer is aborted promptly", async () => {
    const c = open(await rawServer(() => ({ stall: true })));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    // the server never answers: only the abort can end these calls (else the test times out)
    await expect(c.get(dA, { signal: controller.signal })).rejects.toBeInstanceOf(AbortError);
    const controller2 = new AbortController();
    setTimeout(() => controller2.abort(), 100);
    await expect(
      (async () => {
        for await (const _ of c.getRecursive(dA, { signal: controller2.signal }));
      })(),
    ).rejects.toBeInstanceOf(AbortError);
  });

  it("calls after close() fail with a BackendError", async () => {
    const { service } = memoryService();
    const server = createDirectoryServiceServer(service, { listen: { port: 0 } });
    await server.listen();
    cleanups.push(() => server.close());
    const c = open(server.url!);
    await c.put(DIRECTORY_A);
    await c.close();
    await expect(c.get(dA)).rejects.toThrow(/client is closed/);
    expect(() => c.putMultipleStart()).toThrow(/client is closed/);
  });
});

describe("client uploads", () => {
  it("a fast producer waits for the network: the queue stays bounded", async () => {
    // A backend whose upload stalls: nothing is read once the HTTP/2 windows are full.
    const { service } = memoryService();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const stalling: DirectoryService = {
      ...service,
      get: service.get.bind(service),
      getRecursive: service.getRecursive.bind(service),
      close: service.close.bind(service),
      put: service.put.bind(service),
      putMultipleStart(opts) {
        const inner = service.putMultipleStart(opts);
        return {
          async put(d) {
            await gate;
            return inner.put(d);
          },
          close: () => inner.close(),
          abort: (r) => inner.abort(r),
        };
      },
    };
    const server = createDirectoryServiceServer(stalling, { listen: { port: 0 } });
    await server.listen();
    cleanups.push(() => server.close({ deadlineMs: 200 }));
    const c = open(server.url!, { putQueueLength: 8, windowBytes: 65_535 });
    // ~100 KiB directories: the windows (1 MiB on the server) hold about ten of them.
    const big = (i: number) => {
      const files = [];
      for (let f = 0; f < 1500; f++)
        files.push(makeFileNode(`f${String(f).padStart(5, "0")}-${i}-${"y".repeat(20)}`, EMPTY_BLOB_DIGEST, 1));
      return makeDirectory({ files });
    };
    const putter = c.putMultipleStart();
    let accepted = 0;
    const producing = (async () => {
      for (let i = 0; i < 200; i++) {
        await putter.put(big(i));
        accepted++;
      }
    })();
    await new Promise((r) => setTimeout(r, 800));
    // what left the producer: the queue (8), the request being written, HTTP/2 windows and socket buffers
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(100);
    await putter.abort();
    release();
    await producing.catch(() => {});
  });
});

describe("client uploads: DirectoryPutter's closing rules", () => {
  /** A served memory store whose uploads commit only when `release` is called. */
  async function slowCommittingServer() {
    const { service, store } = memoryService();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow: DirectoryService = {
      ...service,
      get: service.get.bind(service),
      getRecursive: service.getRecursive.bind(service),
      close: service.close.bind(service),
      put: service.put.bind(service),
      putMultipleStart(opts) {
        const inner = service.putMultipleStart(opts);
        return {
          put: (d) => inner.put(d),
          async close() {
            await gate;
            return inner.close();
          },
          abort: (r) => inner.abort(r),
        };
      },
    };
    const server = createDirectoryServiceServer(slow, { listen: { port: 0 } });
    await server.listen();
    cleanups.push(() => server.close({ deadlineMs: 200 }));
    return { client: open(server.url!), store, release };
  }

  it("abort() during close() waits for the server: it stored the upload, so abort() rejects and close() resolves", async () => {
    const { client, store, release } = await slowCommittingServer();
    const putter = client.putMultipleStart();
    await putter.put(DIRECTORY_A);
    await putter.put(DIRECTORY_B);
    const closing = putter.close();
    closing.catch(() => {});
    const aborting = putter.abort();
    aborting.catch(() => {});
    await expect(putter.put(DIRECTORY_C)).rejects.toThrow(/already closed/);
    await expect(putter.close()).rejects.toThrow(/already closed/);
    release();
    await expect(aborting).rejects.toThrow(/too late: the upload was already committed as/);
    expect((await closing).hex).toBe(directoryDigest(DIRECTORY_B).hex);
    expect(store.map.has(directoryDigest(DIRECTORY_B).hex)).toBe(true);
  });

  it("abort() during close() of an upload the server refuses resolves; close() rejects; nothing stored", async () => {
    const { client, store, release } = await slowCommittingServer();
    release();
    const putter = client.putMultipleStart();
    // A and C are not connected: C does not refer to B, and B is a second root.
    await putter.put(DIRECTORY_A);
    await putter.put(DIRECTORY_B);
    await putter.put(DIRECTORY_C);
    const closing = putter.close();
    closing.catch(() => {});
    await putter.abort();
    await expect(closing).rejects.toThrow(/not connected/);
    expect(store.map.size).toBe(0);
  });
});

describe("URLs", () => {
  it("parses grpc+http, grpc+https and grpc+unix with options", () => {
    expect(parseGrpcUrl(new URL("grpc+http://127.0.0.1:8000"))).toEqual({
      target: { kind: "tcp", host: "127.0.0.1", port: 8000, tls: false },
    });
    expect(parseGrpcUrl(new URL("grpc+http://[::1]:8000?service=snix")).target).toEqual({
      kind: "tcp",
      host: "::1",
      port: 8000,
      tls: false,
    });
    expect(parseGrpcUrl(new URL("grpc+http://[::1]:8000?service=snix")).serviceName).toBe("snix");
    expect(parseGrpcUrl(new URL("grpc+https://store.example")).target).toEqual({
      kind: "tcp",
      host: "store.example",
      port: 443,
      tls: true,
    });
    expect(parseGrpcUrl(new URL("grpc+unix:///run/castore/socket?connectTimeoutMs=500"))).toEqual({
      target: { kind: "unix", path: "/run/castore/socket" },
      connectTimeoutMs: 500,
    });
  });

  it("rejects malformed gRPC URLs with InvalidUrlError", async () => {
    for (const url of [
      "grpc+unix://host/socket",
      "grpc+unix://",
      "grpc+http://host:1/path",
      "grpc+http://host:1?servce=snix",
      "grpc+http://host:1?service=nix",
      "grpc+http://host:1?connectTimeoutMs=-1",
      "grpc+http://host:1?maxMessageBytes=0",
      "grpc+http://host:1?maxmessagebytes=1000",
      "grpc+http://host:1?ca=/etc/ca.pem",
    ]) {
      await expect(openDirectoryService(url), url).rejects.toBeInstanceOf(InvalidUrlError);
    }
  });

  it("maxMessageBytes: a whole number of bytes, 1 to 2^32-1, with a clear error", () => {
    expect(parseGrpcUrl(new URL("grpc+http://127.0.0.1:8000?maxMessageBytes=16777216")).maxMessageBytes).toBe(
      16 * 1024 * 1024,
    );
    expect(parseGrpcUrl(new URL("grpc+unix:///s?maxMessageBytes=4294967295&service=snix"))).toEqual({
      target: { kind: "unix", path: "/s" },
      serviceName: "snix",
      maxMessageBytes: 2 ** 32 - 1,
    });
    for (const bad of ["", "0", "-1", "1.5", "1e6", "0x10", " 100", "4MiB", "4294967296", "99999999999999999999"]) {
      const url = `grpc+http://127.0.0.1:8000?maxMessageBytes=${encodeURIComponent(bad)}`;
      expect(() => GrpcDirectoryService.fromUrl(url), bad).toThrow(InvalidUrlError);
      expect(() => GrpcDirectoryService.fromUrl(url), bad).toThrow(
        `maxMessageBytes must be a whole number of bytes from 1 to 4294967295 (gRPC's 32-bit length prefix), got ${JSON.stringify(bad)}`,
      );
    }
  });

  it("?maxMessageBytes= limits what the client accepts; an option given to fromUrl wins", async () => {
    const { service } = memoryService();
    const server = createDirectoryServiceServer(service, { listen: { host: "127.0.0.1", port: 0 } });
    await server.listen();
    cleanups.push(() => server.close({ deadlineMs: 500 }));
    // about 50 bytes an entry: 600 to 700 bytes encoded
    const wide = makeDirectory({
      files: Array.from({ length: 12 }, (_, i) =>
        makeFileNode(`file-${String(i).padStart(2, "0")}-${"x".repeat(30)}`, EMPTY_BLOB_DIGEST, 0),
      ),
    });
    const size = encodeDirectory(wide).length;
    expect(size).toBeGreaterThan(500);
    expect(size).toBeLessThan(1000);
    const root = await open(server.url!).put(wide);

    const small = open(`${server.url}?maxMessageBytes=500`);
    const e = await small.get(root).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BackendError);
    expect(grpcCodeOf(e)).toBe(Code.ResourceExhausted);
    expect(String((e as Error).message)).toMatch(
      new RegExp(`message size ${size} is larger than configured readMaxBytes 500`),
    );
    // the limit is on the whole message: at exactly its size it passes
    expect(await open(`${server.url}?maxMessageBytes=${size}`).get(root)).toEqual(wide);
    expect(await open(`${server.url}?maxMessageBytes=500`, { maxMessageBytes: 1000 }).get(root)).toEqual(wide);
    // and through core's openDirectoryService
    const viaCore = await openDirectoryService(`${server.url}?maxMessageBytes=${size - 1}`);
    cleanups.push(() => viaCore.close());
    expect(grpcCodeOf(await viaCore.get(root).catch((x: unknown) => x))).toBe(Code.ResourceExhausted);
  });

  it("registers its schemes with core's openDirectoryService", async () => {
    for (const url of [
      "grpc+http://127.0.0.1:1",
      "grpc+unix:///tmp/nothing-here",
      "grpc+http://127.0.0.1:1?service=snix",
    ]) {
      const s = await openDirectoryService(url);
      expect(s).toBeInstanceOf(GrpcDirectoryService);
      await s.close();
    }
  });
});
