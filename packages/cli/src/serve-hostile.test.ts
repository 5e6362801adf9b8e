/**
 * A running `castore serve` process under hostile requests: malformed
 * pseudo-headers and content types sent with raw node:http2 (and, for what
 * node's client will not send, raw HTTP/2 frames), and grpc-timeout values
 * in every unit and size, then a health check and a normal upload and Get.
 * Before the fixes, `:authority: [::1` and `grpc-timeout: 9999876u` each
 * ended the process (issue 14, items 1 and 2).
 */
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { fixtures, openDirectoryService } from "@castore-ts/core";
import "@castore-ts/backend-grpc";
import { rawGrpcCall, startCastoreServe } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

const { DIRECTORY_A, DIRECTORY_WITH_KEEP } = fixtures;
const OK = 0;
const GET = "/tvix.castore.v1.DirectoryService/Get";
const HEALTH_CHECK = "/grpc.health.v1.Health/Check";

/** A GetDirectoryRequest: digest (field 1), not recursive. */
function getRequest(digest: Uint8Array): Uint8Array {
  return Uint8Array.from([0x0a, digest.length, ...digest]);
}

/** An HTTP/2 frame. */
function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK "literal header field without indexing, new name", no Huffman coding (short names and values only). */
function hpackLiteral(name: string, value: string): Buffer {
  const n = Buffer.from(name);
  const v = Buffer.from(value);
  if (n.length > 126 || v.length > 126) throw new Error("short headers only");
  return Buffer.concat([Buffer.from([0x00, n.length]), n, Buffer.from([v.length]), v]);
}

const FRAME_DATA = 0x0;
const FRAME_HEADERS = 0x1;
const FRAME_RST_STREAM = 0x3;
const FRAME_SETTINGS = 0x4;
const FRAME_GOAWAY = 0x7;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;

/**
 * Sends one request with exactly `headers` (pseudo-headers missing or out of
 * order included, which node's client never sends) on a new connection and
 * resolves with how the server ended stream 1: a frame ending it, a
 * RST_STREAM, a GOAWAY, or the connection closing.
 */
function rawHeadersRequest(port: number, headers: [string, string][]): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (how: string) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve(how);
    };
    socket.on("error", () => done("connection error"));
    socket.on("close", () => done("connection closed"));
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 9) {
        const length = buf.readUIntBE(0, 3);
        if (buf.length < 9 + length) break;
        const type = buf[3];
        const flags = buf[4];
        const streamId = buf.readUInt32BE(5) & 0x7fffffff;
        if (type === FRAME_RST_STREAM && streamId === 1) done(`RST_STREAM ${buf.readUInt32BE(9)}`);
        if (type === FRAME_GOAWAY) done(`GOAWAY ${buf.readUInt32BE(13)}`);
        if ((type === FRAME_HEADERS || type === FRAME_DATA) && streamId === 1 && flags & FLAG_END_STREAM)
          done("answered");
        buf = buf.subarray(9 + length);
      }
    });
    const block = Buffer.concat(headers.map(([k, v]) => hpackLiteral(k, v)));
    socket.write(
      Buffer.concat([
        Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0)),
        frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, block),
        frame(FRAME_DATA, FLAG_END_STREAM, 1, Buffer.from([0, 0, 0, 0, 0])),
      ]),
    );
  });
}

describe("castore serve under malformed requests", () => {
  it(
    "answers or refuses every one, and still serves health checks and a normal Get afterwards",
    { timeout: 120_000 },
    async () => {
      const serve = await startCastoreServe(CASTORE_CLI, ["--listen", "127.0.0.1:0", "--store", "memory://"]);
      let exitCode: number | null | undefined;
      try {
        const origin = serve.url.replace(/^grpc\+/, "");
        const port = Number(new URL(origin).port);
        const client = await openDirectoryService(serve.url);
        const root = await client.put(DIRECTORY_A);
        const get = getRequest(root.bytes);

        const stillServing = async (after: string) => {
          expect(serve.child.exitCode, `${after}: ${serve.stderr()}`).toBeNull();
          const health = await rawGrpcCall(origin, { ":path": HEALTH_CHECK }, { messages: [new Uint8Array()] });
          expect(health.grpcStatus, `health after ${after}: ${serve.stderr()}`).toBe(OK);
        };

        // Malformed pseudo-headers and headers, through node's client.
        const headerCases: Record<string, string>[] = [
          { ":authority": "[::1" },
          { ":authority": "" },
          { ":authority": "x:99999" },
          { ":authority": "host:port" },
          { ":authority": "[zz]" },
          { ":authority": "a b" },
          { ":authority": "a".repeat(20_000) },
          { ":authority": "%00" },
          { host: "[::1" },
          { ":path": "garbage" },
          { ":path": "http://[::1" },
          { ":path": "//[::1" },
          { ":path": "/" + "x".repeat(20_000) },
          { ":path": `${GET}?${"q".repeat(1000)}` },
          { ":path": "/tvix.castore.v1.DirectoryService/Get/../Put" },
          { ":method": "GET" },
          { ":method": "" },
          { ":method": "CONNECT" },
          { ":scheme": "ftp" },
          { ":scheme": "" },
          { "content-type": "text/plain" },
          { "content-type": "" },
          { "content-type": "application/grpc+json" },
          { "grpc-encoding": "bogus" },
          { "grpc-accept-encoding": "%%%" },
          { te: "gzip" },
          { authorization: "Bearer \u00ff" },
        ];
        for (const headers of headerCases) {
          const shown = JSON.stringify(headers).slice(0, 80);
          const answer = await rawGrpcCall(origin, { ":path": GET, ...headers }, { messages: [get] });
          // Answered with a status (HTTP or gRPC), or refused at the HTTP/2 layer: never left hanging.
          expect(
            answer.grpcStatus !== undefined || answer.httpStatus !== undefined || answer.streamError !== undefined,
            shown,
          ).toBe(true);
          await stillServing(shown);
        }

        // Requests node's client will not make: pseudo-headers missing or empty.
        const rawCases: [string, string][][] = [
          [
            [":scheme", "http"],
            [":path", GET],
            [":authority", "x"],
            ["content-type", "application/grpc"],
          ], // no :method
          [
            [":method", "POST"],
            [":scheme", "http"],
            [":path", GET],
            ["content-type", "application/grpc"],
          ], // no :authority
          [
            [":method", "POST"],
            [":scheme", "http"],
            [":authority", "x"],
            ["content-type", "application/grpc"],
          ], // no :path
          [
            [":method", "POST"],
            [":path", GET],
            [":authority", "x"],
            ["content-type", "application/grpc"],
          ], // no :scheme
          [
            [":method", "POST"],
            [":scheme", "http"],
            [":path", GET],
            [":authority", "[::1"],
            ["content-type", "application/grpc"],
          ],
          [
            [":method", "POST"],
            [":scheme", "http"],
            [":path", GET],
            ["host", "[::1"],
            ["content-type", "application/grpc"],
          ],
          [
            [":method", "POST"],
            [":scheme", "http"],
            [":path", ""],
            [":authority", "x"],
            ["content-type", "application/grpc"],
          ],
          [
            ["content-type", "application/grpc"],
            [":method", "POST"],
            [":scheme", "http"],
            [":path", GET],
            [":authority", "x"],
          ], // pseudo-header after a header
          [
            [":method", "POST"],
            [":method", "POST"],
            [":scheme", "http"],
            [":path", GET],
            [":authority", "x"],
          ], // twice
        ];
        for (const headers of rawCases) {
          const shown = JSON.stringify(headers);
          const how = await rawHeadersRequest(port, headers);
          expect(how, shown).toMatch(/^(answered|RST_STREAM \d+|GOAWAY \d+|connection closed)$/);
          await stillServing(shown);
        }

        // grpc-timeout in every unit and size, as grpc-go and others send them.
        const units = ["H", "M", "S", "m", "u", "n"];
        const timeouts = [
          ...["1", "1500", "9999876", "99999999"].flatMap((digits) => units.map((u) => digits + u)),
          "3000000S",
          "2147484S",
          "0m",
          "garbage",
          "1.5S",
          "-1S",
          "123456789m",
          "1S, 2S",
        ];
        for (const timeout of timeouts) {
          const answer = await rawGrpcCall(origin, { ":path": GET, "grpc-timeout": timeout }, { messages: [get] });
          expect(answer.grpcStatus, `grpc-timeout ${timeout}`).toBeDefined();
          const health = await rawGrpcCall(
            origin,
            { ":path": HEALTH_CHECK, "grpc-timeout": timeout },
            { messages: [new Uint8Array()] },
          );
          expect(health.grpcStatus, `health, grpc-timeout ${timeout}`).toBeDefined();
          await stillServing(`grpc-timeout ${timeout}`);
        }
        // Deadlines long enough for the call are served in full.
        for (const timeout of ["9999876u", "99999999H", "3000000S", "99999999n"]) {
          const answer = await rawGrpcCall(origin, { ":path": GET, "grpc-timeout": timeout }, { messages: [get] });
          expect(answer, `grpc-timeout ${timeout}`).toMatchObject({ grpcStatus: OK });
          expect(answer.messages).toHaveLength(1);
        }

        // A normal client on the same server: upload and read back.
        const rootB = await client.put(DIRECTORY_WITH_KEEP);
        expect(await client.get(rootB)).toEqual(DIRECTORY_WITH_KEEP);
        expect(await client.get(root)).toEqual(DIRECTORY_A);
        await client.close();
      } finally {
        exitCode = await serve.stop();
      }
      expect(exitCode, serve.stderr()).toBe(0);
    },
  );
});
