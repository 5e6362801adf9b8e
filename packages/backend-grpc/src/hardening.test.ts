/**
 * Limits and abuse: concurrent streams per connection, connections per
 * server, idle connections, idle (stalled) calls, entries per directory,
 * bearer-token authentication.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "@castore-ts/testing";
import {
  BackendError,
  directoryDigest,
  encodeDirectory,
  fixtures,
  makeDirectory,
  makeFileNode,
} from "@castore-ts/core";
import { BearerTokens, parseAuthTokens } from "./auth.js";
import { envelope, EnvelopeReader } from "./grpc-framing.js";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import { encodeGetRequest, grpcJsAddress, rawGet, rawPut } from "./grpc-js.test-helper.js";
import { type Harness, startHarness } from "./memory-store.test-helper.js";
import { grpcCodeOf } from "./status.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { isRefusedStream } from "./grpc-stream-calls.js";
import { createServerMetrics } from "./metrics.js";
import type { DirectoryServiceServerOptions } from "./server.js";

const { DIRECTORY_A, DIRECTORY_B, EMPTY_BLOB_DIGEST } = fixtures;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The value of one sample (name and labels exactly as given) in prom-client's text. */
async function sample(h: Harness, series: string): Promise<number | undefined> {
  for (const line of (await h.server.metrics!.registry.metrics()).split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

let cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

async function harness(opts: Partial<DirectoryServiceServerOptions>, clientOpts = {}): Promise<Harness> {
  const h = await startHarness("tcp", opts, clientOpts);
  cleanups.push(() => h.close());
  return h;
}

function raw(h: Harness, options: grpc.ClientOptions = {}): grpc.Client {
  const c = new grpc.Client(grpcJsAddress(h.server.url!), grpc.credentials.createInsecure(), options);
  cleanups.push(() => c.close());
  return c;
}

const identity = (b: Buffer) => b;

/** A Put stream left open: resolves with its status once the server ends it. */
function openPut(client: grpc.Client, messages: Uint8Array[], metadata = new grpc.Metadata()) {
  let call!: grpc.ClientWritableStream<Buffer>;
  const done = new Promise<{ error?: grpc.ServiceError; response?: Buffer }>((resolve) => {
    call = client.makeClientStreamRequest(
      "/tvix.castore.v1.DirectoryService/Put",
      identity,
      identity,
      metadata,
      (error, response) => resolve(error ? { error } : { response }),
    );
  });
  for (const m of messages) call.write(Buffer.from(m));
  return { call, done };
}

function fileDirectory(n: number) {
  const files = [];
  for (let i = 0; i < n; i++) files.push(makeFileNode(`f${String(i).padStart(6, "0")}`, EMPTY_BLOB_DIGEST, 0n, false));
  return makeDirectory({ files });
}

describe("max concurrent streams per connection", () => {
  it("a connection gets no more than maxConcurrentStreams calls at once", async () => {
    const h = await harness({ maxConcurrentStreams: 2, idleTimeoutMs: 0 });
    const session = http2.connect(`http://127.0.0.1:${(h.server.address as { port: number }).port}`);
    cleanups.push(() => void session.destroy());
    await new Promise((r) => session.once("remoteSettings", r));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(2);
    const outcomes: string[] = [];
    const streams = [0, 1, 2, 3].map(() => {
      const s = session.request({
        ":method": "POST",
        ":path": "/tvix.castore.v1.DirectoryService/Put",
        "content-type": "application/grpc",
        te: "trailers",
      });
      s.on("error", (e: NodeJS.ErrnoException) => outcomes.push(`error ${e.code}`));
      s.on("close", () => outcomes.push(`close ${s.rstCode}`));
      s.resume();
      return s;
    });
    // Two run; the other two wait in the client's queue until a slot is free.
    await waitFor(() => h.server.activeCalls === 2);
    streams[0].close(http2.constants.NGHTTP2_CANCEL);
    streams[1].close(http2.constants.NGHTTP2_CANCEL);
    await waitFor(() => outcomes.filter((o) => o.startsWith("close")).length === 2);
    await waitFor(() => h.server.activeCalls === 2);
    for (const s of streams) s.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor(() => h.server.activeCalls === 0);
    expect(h.store.map.size).toBe(0);
  });

  it("defaults to 100", async () => {
    const h = await harness({});
    const session = http2.connect(`http://127.0.0.1:${(h.server.address as { port: number }).port}`);
    cleanups.push(() => void session.destroy());
    await new Promise((r) => session.once("remoteSettings", r));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(100);
  });
});

describe("max connections", () => {
  it("the (n+1)-th connection is refused at once and counted; the n open ones keep working", async () => {
    const h = await harness({ maxConnections: 2, metrics: createServerMetrics({ defaultMetrics: false }) });
    const url = h.server.url!;
    const [one, two, three] = [0, 1, 2].map(() => {
      const c = GrpcDirectoryService.fromUrl(url);
      cleanups.push(() => c.close());
      return c;
    });
    const a = await one!.put(DIRECTORY_A);
    const b = await two!.put(fileDirectory(1));
    expect(h.server.openConnections).toBe(2);

    const refused = await three!.get(a).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BackendError);
    expect(grpcCodeOf(refused)).toBe(status.UNAVAILABLE);
    // at once: refused by the server, not given up after the client's connect timeout
    expect((refused as Error).message).toMatch(/connection refused/);
    expect((refused as Error).message).not.toMatch(/connect timeout/);
    expect(await sample(h, "castore_grpc_server_connections_refused_total")).toBe(1);

    // a raw TCP connection too: accepted by the kernel, closed by the server before any byte
    const socket = net.connect((h.server.address as { port: number }).port, "127.0.0.1");
    let received = 0;
    socket.on("data", (d: Buffer) => (received += d.length));
    socket.on("error", () => {});
    await new Promise((r) => socket.once("close", r));
    expect(received).toBe(0);
    expect(await sample(h, "castore_grpc_server_connections_refused_total")).toBe(2);

    // the two open connections were not touched
    expect(await one!.get(b)).toBeDefined();
    expect(await two!.get(a)).toBeDefined();
    expect(h.server.openConnections).toBe(2);
    expect(await sample(h, "castore_grpc_server_connections")).toBe(2);

    // a closed one frees its place
    await one!.close();
    await waitFor(() => h.server.openConnections === 1);
    expect(await three!.get(a)).toBeDefined();
    expect(h.server.openConnections).toBe(2);
    expect(await sample(h, "castore_grpc_server_connections_refused_total")).toBe(2);
  });
  it("a grpc-js client over the limit gets UNAVAILABLE at once, and gets through once a place frees", async () => {
    const h = await harness({ maxConnections: 1 });
    const root = await h.client.put(DIRECTORY_A);
    const other = raw(h);
    const request = encodeGetRequest(root.bytes, false);
    // no deadline on the call: UNAVAILABLE can only come from the refused connection
    const refused = await rawGet(other, request);
    expect(refused.error?.code).toBe(status.UNAVAILABLE);
    await h.client.close();
    await waitFor(() => h.server.openConnections === 0);
    // grpc-js backs off (1 s, then longer) after a failed connection: poll instead of racing it.
    await waitFor(
      async () => (await rawGet(other, request)).messages.length === 1,
      "a new connection is accepted once the first one closed",
    );
    expect(h.server.openConnections).toBe(1);
  });
  it("over a Unix socket too", async () => {
    const h = await startHarness("unix", { maxConnections: 1 });
    cleanups.push(() => h.close());
    const root = await h.client.put(DIRECTORY_A);
    const other = GrpcDirectoryService.fromUrl(h.server.url!);
    cleanups.push(() => other.close());
    const refused = await other.get(root).catch((e: unknown) => e);
    expect(grpcCodeOf(refused)).toBe(status.UNAVAILABLE);
    expect(await h.client.get(root)).toBeDefined();
  });
});

describe("connection idle timeout", () => {
  it("a connection without calls is closed with a GOAWAY after the timeout; the client reconnects for its next call", async () => {
    const h = await harness({ connectionIdleTimeoutMs: 300, metrics: createServerMetrics({ defaultMetrics: false }) });
    const root = await h.client.put(DIRECTORY_A);
    const lastCall = Date.now();
    expect(h.server.openConnections).toBe(1);
    await waitFor(() => h.server.openConnections === 0);
    expect(Date.now() - lastCall).toBeGreaterThanOrEqual(250);
    expect(await sample(h, "castore_grpc_server_connections_idle_closed_total")).toBe(1);
    // the same client, a new connection
    expect(await h.client.get(root)).toBeDefined();
    expect(h.server.openConnections).toBe(1);
    await waitFor(() => h.server.openConnections === 0);
    expect(await h.client.get(root)).toBeDefined();
    expect(await sample(h, "castore_grpc_server_connections_idle_closed_total")).toBe(2);
  });

  it("the GOAWAY says NO_ERROR; a connection that never made a call is closed too", async () => {
    const h = await harness({ connectionIdleTimeoutMs: 200 });
    const session = http2.connect(`http://127.0.0.1:${(h.server.address as { port: number }).port}`);
    cleanups.push(() => void session.destroy());
    session.on("error", () => {});
    const goaway = new Promise<number>((resolve) => session.once("goaway", (code: number) => resolve(code)));
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    await new Promise((r) => (session.closed ? r(undefined) : session.once("close", r)));
    await waitFor(() => h.server.openConnections === 0);
  });

  it("a connection with an open call is not idle, however quiet the call", async () => {
    const h = await harness({ connectionIdleTimeoutMs: 200, idleTimeoutMs: 0 });
    const { call, done } = openPut(raw(h), [encodeDirectory(DIRECTORY_A)]);
    await waitFor(() => h.server.activeCalls === 1);
    // A witness connection opened after ours, with no call: once it is closed as
    // idle, our connection's idle time has passed too, had it been idle.
    const witness = http2.connect(`http://127.0.0.1:${(h.server.address as { port: number }).port}`);
    cleanups.push(() => void witness.destroy());
    witness.on("error", () => {});
    await new Promise((r) => witness.once("close", r));
    await waitFor(() => h.server.openConnections <= 1);
    expect(h.server.openConnections).toBe(1);
    call.write(Buffer.from(encodeDirectory(DIRECTORY_B)));
    call.end();
    const { error } = await done;
    expect(error).toBeUndefined();
    expect(h.store.map.size).toBe(2);
    // idle once the call is over
    await waitFor(() => h.server.openConnections === 0);
  });

  it("calls made just as the connection is closed as idle are sent again, on a new connection", async () => {
    // Some of these land in the moment the server closes: their streams are
    // refused unprocessed (REFUSED_STREAM), and the client sends them again.
    const h = await harness({ connectionIdleTimeoutMs: 60, metrics: createServerMetrics({ defaultMetrics: false }) });
    const root = await h.client.put(DIRECTORY_A);
    for (let i = 0; i < 40; i++) {
      await sleep(50 + (i % 20));
      if (i % 2 === 0) expect(await h.client.get(root)).toBeDefined();
      else expect((await h.client.put(fileDirectory(i))).equals(directoryDigest(fileDirectory(i)))).toBe(true);
    }
    expect(await sample(h, "castore_grpc_server_connections_idle_closed_total")).toBeGreaterThan(5);
  });

  it("only a stream the server refused unprocessed is sent again, not a status that says so", () => {
    const nodeError = Object.assign(new Error("Stream closed with error code NGHTTP2_REFUSED_STREAM"), {
      code: "ERR_HTTP2_STREAM_ERROR",
    });
    expect(isRefusedStream(new ConnectError(nodeError.message, Code.Internal, undefined, undefined, nodeError))).toBe(
      true,
    );
    expect(
      isRefusedStream(new ConnectError("http/2 stream closed with error code REFUSED_STREAM (0x7)", Code.Unavailable)),
    ).toBe(true);
    const wire = new ConnectError("upstream said REFUSED_STREAM", Code.Unavailable);
    (wire as { isWireError: boolean }).isWireError = true;
    expect(isRefusedStream(wire)).toBe(false);
    expect(isRefusedStream(new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled))).toBe(
      false,
    );
  });

  it("0 turns it off", async () => {
    const h = await harness({ connectionIdleTimeoutMs: 0 });
    await h.client.put(DIRECTORY_A);
    // A witness server with a 200 ms idle timeout, connected to after ours:
    // once it closes its idle connection, ours has been idle longer.
    const witness = await harness({ connectionIdleTimeoutMs: 200 });
    const session = http2.connect(`http://127.0.0.1:${(witness.server.address as { port: number }).port}`);
    cleanups.push(() => void session.destroy());
    session.on("error", () => {});
    await new Promise((r) => session.once("goaway", r));
    expect(h.server.openConnections).toBe(1);
  });
});

describe("idle timeout", () => {
  it("a Put opened and never sent ends with DEADLINE_EXCEEDED; nothing is stored", async () => {
    const h = await harness({ idleTimeoutMs: 300 });
    // the call has no client deadline: DEADLINE_EXCEEDED "idle" comes from the server's idle timer
    const { done } = openPut(raw(h), []);
    const { error } = await done;
    expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
    expect(error?.details).toMatch(/idle/);
    await waitFor(() => h.server.activeCalls === 0);
    expect(h.store.putClosureCalls).toBe(0);
  });

  it("a Put stalled mid-upload is aborted: nothing of it is stored", async () => {
    const h = await harness({ idleTimeoutMs: 300 });
    const { done } = openPut(raw(h), [encodeDirectory(DIRECTORY_A), encodeDirectory(DIRECTORY_B)]);
    const { error } = await done;
    expect(error?.code).toBe(status.DEADLINE_EXCEEDED);
    await waitFor(() => h.server.activeCalls === 0);
    expect(h.store.map.size).toBe(0);
    expect(h.store.putClosureCalls).toBe(0);
  });

  it("a Get whose request never comes ends with DEADLINE_EXCEEDED", async () => {
    const h = await harness({ idleTimeoutMs: 300 });
    const session = http2.connect(`http://127.0.0.1:${(h.server.address as { port: number }).port}`);
    cleanups.push(() => void session.destroy());
    const s = session.request({
      ":method": "POST",
      ":path": "/tvix.castore.v1.DirectoryService/Get",
      "content-type": "application/grpc",
      te: "trailers",
    });
    s.resume();
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => s.once("trailers", resolve));
    expect(trailers["grpc-status"]).toBe(String(status.DEADLINE_EXCEEDED));
  });

  it("a slow but steady upload is not idle", async () => {
    const h = await harness({ idleTimeoutMs: 400 });
    const { call, done } = openPut(raw(h), [encodeDirectory(DIRECTORY_A)]);
    for (let i = 0; i < 4; i++) {
      await sleep(150);
      call.write(Buffer.from(encodeDirectory(DIRECTORY_A)));
    }
    call.write(Buffer.from(encodeDirectory(DIRECTORY_B)));
    call.end();
    const { error, response } = await done;
    expect(error).toBeUndefined();
    expect(response!.length).toBeGreaterThan(0);
    expect(h.store.map.size).toBe(2);
  });

  it("the well-behaved client and Get work with the default timer", async () => {
    const h = await harness({});
    const root = await h.client.put(DIRECTORY_A);
    expect(await h.client.get(root)).toBeDefined();
  });
});

describe("max entries per directory", () => {
  it("a directory over the limit is RESOURCE_EXHAUSTED with a clear message; at the limit is fine", async () => {
    const h = await harness({ maxEntriesPerDirectory: 3 });
    const over = await rawPut(raw(h), [encodeDirectory(fileDirectory(4))]);
    expect(over.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(over.error?.details).toMatch(/4 entries, more than the limit of 3 per directory/);
    expect(h.store.map.size).toBe(0);
    await h.client.put(fileDirectory(3));
    expect(h.store.map.size).toBe(1);
  });
});

describe("authentication", () => {
  const TOKENS = ["s3cr3t-one", "s3cr3t-two"];

  it("parses token files: one per line, blank lines and comments ignored", () => {
    expect(parseAuthTokens("# ci\n\n  alpha  \r\nbeta\n#gamma\n")).toEqual(["alpha", "beta"]);
    expect(() => parseAuthTokens("# nothing\n\n")).toThrow(/no tokens/);
    expect(() => parseAuthTokens("two words\n")).toThrow(/whitespace/);
  });

  it("compares bearer tokens exactly", () => {
    const t = new BearerTokens(TOKENS);
    expect(t.accepts("Bearer s3cr3t-one")).toBe(true);
    expect(t.accepts("bearer s3cr3t-two")).toBe(true);
    for (const bad of [
      undefined,
      "",
      "Bearer",
      "Bearer ",
      "s3cr3t-one",
      "Basic s3cr3t-one",
      "Bearer s3cr3t-on",
      "Bearer s3cr3t-one2",
      "Bearer x s3cr3t-one",
    ]) {
      expect(t.accepts(bad), String(bad)).toBe(false);
    }
  });

  it("calls without a valid token are UNAUTHENTICATED; with one they work", async () => {
    const logs: string[] = [];
    const logger = {
      debug: (o: object, m?: string) => logs.push(JSON.stringify(o) + m),
      info: (o: object, m?: string) => logs.push(JSON.stringify(o) + m),
      warn: (o: object, m?: string) => logs.push(JSON.stringify(o) + m),
      error: (o: object, m?: string) => logs.push(JSON.stringify(o) + m),
    };
    const h = await harness({ authTokens: TOKENS, logger });
    const url = h.server.url!;
    // no token (the harness client), a wrong one, a prefix of a right one
    for (const client of [
      h.client,
      GrpcDirectoryService.fromUrl(`${url}?token=wrong`),
      GrpcDirectoryService.fromUrl(url, { authToken: "s3cr3t" }),
    ]) {
      const error = await client.put(DIRECTORY_A).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect(grpcCodeOf(error)).toBe(grpc.status.UNAUTHENTICATED);
      expect(String((error as Error).message)).not.toMatch(/s3cr3t|wrong/);
      expect(await client.get(directoryDigest(DIRECTORY_A)).catch((e: unknown) => grpcCodeOf(e))).toBe(
        grpc.status.UNAUTHENTICATED,
      );
      if (client !== h.client) await client.close();
    }
    // raw: a Get without metadata
    const { error } = await rawGet(raw(h), encodeGetRequest(new Uint8Array(32), false));
    expect(error?.code).toBe(status.UNAUTHENTICATED);
    // right tokens: in the URL, as an option, from CASTORE_AUTH_TOKEN
    const viaUrl = GrpcDirectoryService.fromUrl(`${url}?token=${TOKENS[0]}`);
    const viaOption = GrpcDirectoryService.fromUrl(url, { authToken: TOKENS[1] });
    process.env.CASTORE_AUTH_TOKEN = TOKENS[1];
    let viaEnv: GrpcDirectoryService;
    try {
      viaEnv = GrpcDirectoryService.fromUrl(url);
    } finally {
      delete process.env.CASTORE_AUTH_TOKEN;
    }
    for (const client of [viaUrl, viaOption, viaEnv]) {
      const root = await client.put(DIRECTORY_A);
      expect(await client.get(root)).toBeDefined();
      await client.close();
    }
    expect(logs.some((l) => /not authenticated/.test(l))).toBe(true);
    for (const l of logs) expect(l).not.toMatch(/s3cr3t/);
  });

  it("a URL with a bad token is refused without showing it", () => {
    expect(() => GrpcDirectoryService.fromUrl("grpc+http://127.0.0.1:1?token=")).toThrow(/token must be non-empty/);
  });
});

describe("message framing under abuse", () => {
  it("a large message in many small chunks is joined once (linear, not quadratic)", () => {
    const message = new Uint8Array(3 * 1024 * 1024).map((_, i) => i & 0xff);
    const framed = envelope([message, Uint8Array.of(1, 2, 3)]);
    const reader = new EnvelopeReader(4 * 1024 * 1024);
    const got: Uint8Array[] = [];
    const started = performance.now();
    for (let pos = 0; pos < framed.length; pos += 1000) {
      for (const e of reader.push(framed.subarray(pos, pos + 1000))) got.push(e.data);
    }
    reader.end();
    // joining at every chunk would copy about 5 GB here
    expect(performance.now() - started).toBeLessThan(3000);
    expect(got.map((g) => g.length)).toEqual([message.length, 3]);
    expect(Buffer.from(got[0]).equals(Buffer.from(message))).toBe(true);
  });

  it("messages split at every possible boundary come out whole", () => {
    const messages = [Uint8Array.of(), Uint8Array.of(9), new Uint8Array(300).fill(7), Uint8Array.of(1, 2, 3, 4, 5, 6)];
    const framed = envelope(messages);
    for (let a = 1; a < framed.length; a += 7) {
      for (let b = a; b < framed.length; b += 13) {
        const reader = new EnvelopeReader(1024);
        const got = [framed.subarray(0, a), framed.subarray(a, b), framed.subarray(b)].flatMap((c) =>
          reader.push(c).map((e) => Buffer.from(e.data)),
        );
        reader.end();
        expect(got).toEqual(messages.map((m) => Buffer.from(m)));
      }
    }
  });
});
