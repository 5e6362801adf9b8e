/**
 * One malformed request cannot take the server down: a :authority that is no
 * URL is answered (HTTP 400, INTERNAL), a handler that throws is answered
 * (INTERNAL), and the server goes on serving. In process: before the guard,
 * either request threw from the 'request' listener and ended the process.
 */
import { afterEach, describe, expect, it } from "vitest";
import { fixtures } from "@castore-ts/core";
import { rawGrpcCall } from "@castore-ts/testing";
import type { Logger } from "./directory-service-handler.js";
import { encodeGetRequest } from "./grpc-js.test-helper.js";
import { memoryService } from "./memory-store.test-helper.js";
import { createDirectoryServiceServer, type DirectoryServiceServerOptions } from "./server.js";

const { DIRECTORY_A } = fixtures;
const OK = 0;
const INTERNAL = 13;
const GET = "/tvix.castore.v1.DirectoryService/Get";
const HEALTH_CHECK = "/grpc.health.v1.Health/Check";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(opts: Partial<DirectoryServiceServerOptions> = {}) {
  const { service } = memoryService();
  const root = await service.put(DIRECTORY_A);
  const server = createDirectoryServiceServer(service, { listen: { host: "127.0.0.1", port: 0 }, ...opts });
  await server.listen();
  cleanups.push(() => server.close({ deadlineMs: 500 }));
  const origin = `http://127.0.0.1:${(server.address as { port: number }).port}`;
  const get = encodeGetRequest(root.bytes, false);
  return { server, origin, get };
}

describe("a request that cannot be served does not stop the server", () => {
  it("a :authority (or host) that is no URL: HTTP 400 with INTERNAL naming it, for every path; the server goes on", async () => {
    const { origin, get } = await serve();
    for (const path of [GET, HEALTH_CHECK, "/tvix.castore.v1.DirectoryService/Put", "/no.such.Service/Method"]) {
      for (const headers of [
        { ":authority": "[::1" },
        { ":authority": "x:99999" },
        { ":authority": "host:port" },
        { ":authority": "[zz]" },
        { host: "[::1" },
      ]) {
        const answer = await rawGrpcCall(origin, { ":path": path, ...headers }, { messages: [get] });
        expect(answer, `${path} ${JSON.stringify(headers)}`).toMatchObject({ httpStatus: 400, grpcStatus: INTERNAL });
        expect(answer.grpcMessage).toMatch(/malformed :authority/);
      }
    }
    const after = await rawGrpcCall(origin, { ":path": GET }, { messages: [get] });
    expect(after).toMatchObject({ httpStatus: 200, grpcStatus: OK });
    expect(after.messages).toHaveLength(1);
    expect((await rawGrpcCall(origin, { ":path": HEALTH_CHECK }, { messages: [new Uint8Array()] })).grpcStatus).toBe(
      OK,
    );
  });

  it("a handler that throws while answering: INTERNAL, logged, and the next call is served", async () => {
    // The refusal of an unauthenticated call is logged before it is answered: a logger that throws there makes the handler throw.
    const logged: string[] = [];
    const logger: Logger = {
      debug(_obj, msg) {
        if (msg?.includes("not authenticated")) throw new Error("log destination failed");
      },
      info() {},
      warn() {},
      error(_obj, msg) {
        logged.push(msg ?? "");
      },
    };
    const { origin, get } = await serve({ authTokens: ["secret-token"], logger });
    const refused = await rawGrpcCall(origin, { ":path": GET }, { messages: [get] });
    expect(refused.grpcStatus).toBe(INTERNAL);
    expect(logged.some((m) => /handler threw/.test(m))).toBe(true);
    const served = await rawGrpcCall(
      origin,
      { ":path": GET, authorization: "Bearer secret-token" },
      { messages: [get] },
    );
    expect(served.grpcStatus).toBe(OK);
    expect(served.messages).toHaveLength(1);
  });
});
