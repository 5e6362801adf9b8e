/**
 * castoreCodeOf: whether a rejection's class was sent by the server (the
 * castore-error-code trailer) or guessed by this client from the status.
 * `castore conformance URL` uses it to decide whether to check error classes.
 */
import { ClosureError, ValidationError, directoryDigest, fixtures } from "@castore-ts/core";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import { startHarness } from "./memory-store.test-helper.js";
import { castoreCodeOf, transportFailureOf } from "./status.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function rejectedUpload(client: GrpcDirectoryService): Promise<unknown> {
  const putter = client.putMultipleStart();
  try {
    await putter.put(fixtures.DIRECTORY_B); // refers to A, which is not sent
    await putter.close();
  } catch (e) {
    return e;
  }
  throw new Error("the upload of a dangling B succeeded");
}

describe("castoreCodeOf", () => {
  it("is the trailer's code when a castore server rejects", async () => {
    const h = await startHarness("tcp");
    cleanups.push(() => h.close());
    const e = await rejectedUpload(h.client);
    expect(e).toBeInstanceOf(ClosureError);
    expect(castoreCodeOf(e)).toBe("CLOSURE");
  });

  it("is undefined when the server rejects with a bare status (a tvix server), though the class is still guessed", async () => {
    const server = new grpc.Server();
    const identity = (b: Buffer) => b;
    server.addService(
      {
        Put: {
          path: "/tvix.castore.v1.DirectoryService/Put",
          requestStream: true,
          responseStream: false,
          requestSerialize: identity,
          requestDeserialize: identity,
          responseSerialize: identity,
          responseDeserialize: identity,
        },
      },
      {
        Put(call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
          call.on("data", () => {});
          call.on("end", () => callback({ code: grpc.status.INVALID_ARGUMENT, details: "invalid name" }));
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    cleanups.push(() => void server.forceShutdown());
    const client = GrpcDirectoryService.fromUrl(`grpc+http://127.0.0.1:${port}`);
    cleanups.push(() => client.close());
    const e = await rejectedUpload(client);
    expect(e).toBeInstanceOf(ValidationError);
    expect(castoreCodeOf(e)).toBeUndefined();
  });

  it("a server that went away is a transport failure, a rejection is not", async () => {
    const h = await startHarness("tcp");
    const url = h.server.url!;
    expect(transportFailureOf(await rejectedUpload(h.client))).toBeUndefined();
    await h.close();
    const client = GrpcDirectoryService.fromUrl(url);
    cleanups.push(() => client.close());
    const e = await client.get(directoryDigest(fixtures.DIRECTORY_A)).catch((x: unknown) => x);
    expect(transportFailureOf(e)).toMatch(/UNAVAILABLE|ECONNREFUSED/);
  });
});
