/**
 * Interop with an independent gRPC implementation, @grpc/grpc-js, through the
 * same .proto files (loaded with @grpc/proto-loader):
 * - grpc-js as client against our server (Get, recursive Get, Put; both
 *   service names);
 * - our client against a grpc-js server that serves a memory backend.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { directoryDigest, fixtures } from "@castore-ts/core";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import {
  fromPlain,
  grpcJsAddress,
  loadServices,
  type PlainDirectory,
  readAll,
  startGrpcJsServer,
  toPlain,
} from "./grpc-js.test-helper.js";
import { type Harness, memoryService, startHarness } from "./memory-store.test-helper.js";

const { DIRECTORY_A, DIRECTORY_B, DIRECTORY_C, DIRECTORY_D, DIRECTORY_COMPLICATED, DIRECTORY_WITH_KEEP } = fixtures;

type GrpcJsClient = grpc.Client & {
  Get(req: object): grpc.ClientReadableStream<PlainDirectory>;
  Put(
    cb: (err: grpc.ServiceError | null, res?: { rootDigest: Buffer }) => void,
  ): grpc.ClientWritableStream<PlainDirectory>;
};

function grpcJsPut(client: GrpcJsClient, directories: PlainDirectory[]) {
  return new Promise<{ rootDigest?: Buffer; error?: grpc.ServiceError }>((resolve) => {
    const call = client.Put((error, res) => resolve(error ? { error } : { rootDigest: res!.rootDigest }));
    for (const d of directories) call.write(d);
    call.end();
  });
}

describe.each(["tcp", "unix"] as const)("grpc-js client against our server over %s", (transport) => {
  let h: Harness;
  let tvix: GrpcJsClient;
  let snix: GrpcJsClient;
  beforeAll(async () => {
    h = await startHarness(transport);
    const services = loadServices();
    const address = grpcJsAddress(h.server.url!);
    tvix = new services.tvix(address, grpc.credentials.createInsecure()) as unknown as GrpcJsClient;
    snix = new services.snix(address, grpc.credentials.createInsecure()) as unknown as GrpcJsClient;
  });
  afterAll(async () => {
    tvix.close();
    snix.close();
    await h.close();
  });

  it("Get of an absent digest is NOT_FOUND; recursive Get of it is an empty stream", async () => {
    const digest = Buffer.from(directoryDigest(DIRECTORY_D).bytes);
    const one = await readAll(tvix.Get({ digest, recursive: false }));
    expect(one.error?.code).toBe(grpc.status.NOT_FOUND);
    const rec = await readAll(tvix.Get({ digest, recursive: true }));
    expect(rec.error).toBeUndefined();
    expect(rec.messages).toEqual([]);
  });

  it("Put [A, B, D] from grpc-js returns D's digest; Get and recursive Get return what was put", async () => {
    const res = await grpcJsPut(tvix, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D].map(toPlain));
    expect(res.error).toBeUndefined();
    expect(Buffer.from(res.rootDigest!).toString("hex")).toBe(directoryDigest(DIRECTORY_D).hex);

    const one = await readAll(tvix.Get({ digest: Buffer.from(directoryDigest(DIRECTORY_D).bytes), recursive: false }));
    expect(one.messages.map(fromPlain)).toEqual([DIRECTORY_D]);

    const rec = await readAll(tvix.Get({ digest: Buffer.from(directoryDigest(DIRECTORY_D).bytes), recursive: true }));
    expect(rec.error).toBeUndefined();
    expect(rec.messages.map(fromPlain)).toEqual([DIRECTORY_D, DIRECTORY_A, DIRECTORY_B]);
  });

  it("Put of a bad closure from grpc-js is INVALID_ARGUMENT with the message", async () => {
    const res = await grpcJsPut(tvix, [toPlain(DIRECTORY_B)]);
    expect(res.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(res.error?.details).toMatch(/not sent earlier in this upload/);
    expect(res.error?.metadata.get("castore-error-code")).toEqual(["CLOSURE"]);
  });

  it("gzip-compressed requests from grpc-js are accepted", async () => {
    const services = loadServices();
    const gzip = new services.tvix(grpcJsAddress(h.server.url!), grpc.credentials.createInsecure(), {
      "grpc.default_compression_algorithm": 2, // gzip
      "grpc.default_compression_level": 2,
    }) as unknown as GrpcJsClient;
    try {
      const res = await grpcJsPut(gzip, [DIRECTORY_A, DIRECTORY_C].map(toPlain));
      expect(res.error).toBeUndefined();
      expect(Buffer.from(res.rootDigest!).toString("hex")).toBe(directoryDigest(DIRECTORY_C).hex);
      const rec = await readAll(gzip.Get({ digest: Buffer.from(directoryDigest(DIRECTORY_C).bytes), recursive: true }));
      expect(rec.messages.map(fromPlain)).toEqual([DIRECTORY_C, DIRECTORY_A]);
    } finally {
      gzip.close();
    }
  });

  it("the snix service name serves the same store", async () => {
    const res = await grpcJsPut(snix, [DIRECTORY_WITH_KEEP, DIRECTORY_COMPLICATED].map(toPlain));
    expect(res.error).toBeUndefined();
    const root = directoryDigest(DIRECTORY_COMPLICATED);
    expect(Buffer.from(res.rootDigest!).toString("hex")).toBe(root.hex);
    const rec = await readAll(snix.Get({ digest: Buffer.from(root.bytes), recursive: true }));
    expect(rec.messages.map(fromPlain)).toEqual([DIRECTORY_COMPLICATED, DIRECTORY_WITH_KEEP]);
    // and tvix sees it too
    const viaTvix = await readAll(tvix.Get({ digest: Buffer.from(root.bytes), recursive: false }));
    expect(viaTvix.messages.map(fromPlain)).toEqual([DIRECTORY_COMPLICATED]);
  });
});

describe("our client against a grpc-js server (tvix-like status codes)", () => {
  let server: Awaited<ReturnType<typeof startGrpcJsServer>>;
  let client: GrpcDirectoryService;
  let snixClient: GrpcDirectoryService;
  beforeAll(async () => {
    server = await startGrpcJsServer(memoryService().service);
    client = GrpcDirectoryService.fromUrl(`grpc+http://${server.address}`);
    snixClient = GrpcDirectoryService.fromUrl(`grpc+http://${server.address}?service=snix`);
  });
  afterAll(async () => {
    await client.close();
    await snixClient.close();
    await server.close();
  });

  it("NOT_FOUND maps to undefined and to an empty getRecursive", async () => {
    const digest = directoryDigest(DIRECTORY_C);
    expect(await client.get(digest)).toBeUndefined();
    const got = [];
    for await (const d of client.getRecursive(digest)) got.push(d);
    expect(got).toEqual([]);
  });

  it("uploads, gets and walks a closure", async () => {
    const putter = client.putMultipleStart();
    for (const d of [DIRECTORY_A, DIRECTORY_C]) await putter.put(d);
    expect((await putter.close()).hex).toBe(directoryDigest(DIRECTORY_C).hex);
    expect(await client.get(directoryDigest(DIRECTORY_C))).toEqual(DIRECTORY_C);
    const got = [];
    for await (const d of client.getRecursive(directoryDigest(DIRECTORY_C))) got.push(d);
    expect(got).toEqual([DIRECTORY_C, DIRECTORY_A]);
  });

  it("a failed upload answered with INTERNAL (as tvix does) is a failed upload", async () => {
    const putter = client.putMultipleStart();
    await putter.put(DIRECTORY_B);
    const error = await putter.close().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: "BACKEND" });
    expect(String((error as Error).message)).toMatch(/INTERNAL|Internal/);
  });

  it("the snix service name", async () => {
    const digest = await snixClient.put(DIRECTORY_WITH_KEEP);
    expect(digest.hex).toBe(directoryDigest(DIRECTORY_WITH_KEEP).hex);
    expect(await snixClient.get(digest)).toEqual(DIRECTORY_WITH_KEEP);
  });
});
