/**
 * castore.sync.v1.SyncService/FindMissing (spec §3.5): `has` of many blobs or
 * directories over gRPC is one call per 50 000 digests against a castore
 * server, counted where the server's handlers reach its services; against a
 * server without the service (a tvix server; here grpc-js answering only the
 * standard Stat and Get) the client falls back to one Stat or Get per digest
 * and gives the same answers. A digest that is not 32 bytes is INVALID_ARGUMENT.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { MapBlobStore } from "@castore-ts/conformance/broken";
import {
  type BlobService,
  ChunkedBlobService,
  Digest,
  directoryDigest,
  type DirectoryService,
  ClosureError,
  directorySize,
  encodeDirectory,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
  StoreDirectoryService,
} from "@castore-ts/core";
import {
  FindMissingRequestSchema,
  GetDirectoryRequestSchema,
  StatBlobRequestSchema,
  StatBlobResponseSchema,
} from "@castore-ts/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrpcBlobService } from "./grpc-blob-service.js";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import { grpcJsAddress, rawClient, readAll } from "./grpc-js.test-helper.js";
import { MapDirectoryStore, memoryService } from "./memory-store.test-helper.js";
import { createDirectoryServiceServer, type DirectoryServiceServer } from "./server.js";

const { DIRECTORY_A, DIRECTORY_B } = fixtures;
const A = directoryDigest(DIRECTORY_A);
const B = directoryDigest(DIRECTORY_B);
const absent = (n: number) => Array.from({ length: n }, (_, i) => Digest.of(new TextEncoder().encode(`absent ${i}`)));

async function storeBlob(blobs: BlobService, text: string): Promise<Digest> {
  const writer = blobs.openWriter();
  await writer.write(new TextEncoder().encode(text));
  return (await writer.close()).digest;
}

describe("FindMissing against castore serve's handlers", () => {
  const calls = { blobHas: 0, blobStat: 0, directoryHas: 0, directoryGet: 0 };
  let server: DirectoryServiceServer;
  let blobs: GrpcBlobService;
  let directories: GrpcDirectoryService;
  let stored: Digest;

  beforeAll(async () => {
    const { service } = memoryService();
    const backendBlobs = new ChunkedBlobService(new MapBlobStore());
    const counting: DirectoryService = Object.create(service, {
      has: {
        value: (...a: Parameters<NonNullable<DirectoryService["has"]>>) => (calls.directoryHas++, service.has!(...a)),
      },
      get: { value: (...a: Parameters<DirectoryService["get"]>) => (calls.directoryGet++, service.get(...a)) },
    });
    const countingBlobs: BlobService = Object.create(backendBlobs, {
      has: { value: (...a: Parameters<BlobService["has"]>) => (calls.blobHas++, backendBlobs.has(...a)) },
      stat: { value: (...a: Parameters<BlobService["stat"]>) => (calls.blobStat++, backendBlobs.stat(...a)) },
    });
    server = createDirectoryServiceServer(counting, { listen: { host: "127.0.0.1", port: 0 }, blobs: countingBlobs });
    await server.listen();
    blobs = GrpcBlobService.fromUrl(server.url!);
    directories = GrpcDirectoryService.fromUrl(server.url!);
    stored = await storeBlob(blobs, "stored");
    const putter = directories.putMultipleStart();
    await putter.put(DIRECTORY_A);
    await putter.put(DIRECTORY_B);
    await putter.close();
  });
  afterAll(async () => {
    await Promise.all([blobs?.close(), directories?.close()]);
    await server?.close({ deadlineMs: 1000 });
  });

  it("answers has() of 3 000 blobs in one call, no Stat", async () => {
    calls.blobHas = calls.blobStat = 0;
    const asked = [stored, ...absent(2998), stored];
    const answer = await blobs.has(asked);
    expect(answer.filter(Boolean).length).toBe(2);
    expect([answer[0], answer[1], answer[2999]]).toEqual([true, false, true]);
    expect(calls).toMatchObject({ blobHas: 1, blobStat: 0 });
  });

  it("answers has() of directories in one call, no Get", async () => {
    calls.directoryHas = calls.directoryGet = 0;
    expect(await directories.has([A, ...absent(1000), B])).toEqual([true, ...absent(1000).map(() => false), true]);
    expect(calls).toMatchObject({ directoryHas: 1, directoryGet: 0 });
  });

  it("says it takes partial uploads, and a partial upload of a parent of a stored directory sends only the parent", async () => {
    expect(await directories.partialUploads()).toBe(true);
    const parent = makeDirectory({
      directories: [makeDirectoryNode("b", B, directorySize(DIRECTORY_B))],
    });
    const putter = directories.putMultipleStart({ partial: true });
    await putter.put(parent);
    expect((await putter.close()).hex).toBe(directoryDigest(parent).hex);
    const read = [];
    for await (const d of directories.getRecursive(directoryDigest(parent))) read.push(directoryDigest(d).hex);
    expect(read).toEqual([directoryDigest(parent).hex, B.hex, A.hex]);
  });

  it("refuses a partial upload referring to a directory the store lacks: ClosureError, nothing stored", async () => {
    const [missing] = absent(1);
    const parent = makeDirectory({ directories: [makeDirectoryNode("gone", missing, 1n)] });
    const putter = directories.putMultipleStart({ partial: true });
    await putter.put(parent);
    await expect(putter.close()).rejects.toBeInstanceOf(ClosureError);
    expect(await directories.get(directoryDigest(parent))).toBeUndefined();
  });

  it("refuses a digest that is not 32 bytes with INVALID_ARGUMENT naming it", async () => {
    const client = rawClient(grpcJsAddress(server.url!));
    try {
      const request = toBinary(
        FindMissingRequestSchema,
        create(FindMissingRequestSchema, { blobs: [new Uint8Array(31)] }),
      );
      const identity = (b: Buffer) => b;
      const { error } = await readAll<Buffer>(
        client.makeServerStreamRequest(
          "/castore.sync.v1.SyncService/FindMissing",
          identity,
          identity,
          Buffer.from(request),
        ),
      );
      expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error?.details).toContain("FindMissingRequest.blobs[0]: expected 32 bytes, got 31");
    } finally {
      client.close();
    }
  });
});

describe("FindMissing against a server without it (tvix)", () => {
  let server: grpc.Server;
  let blobs: GrpcBlobService;
  let directories: GrpcDirectoryService;
  const stats: string[] = [];
  const present = Digest.of(new TextEncoder().encode("present"));

  beforeAll(async () => {
    server = new grpc.Server();
    const identity = (b: Buffer) => b;
    const unary = (path: string) => ({
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    });
    server.addService(
      { Stat: unary("/tvix.castore.v1.BlobService/Stat"), Get: unary("/tvix.castore.v1.DirectoryService/Get") },
      {
        Stat(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
          const digest = Digest.fromBytes(fromBinary(StatBlobRequestSchema, call.request).digest);
          stats.push(digest.hex);
          if (!digest.equals(present)) return callback({ code: grpc.status.NOT_FOUND, details: "no such blob" });
          callback(null, Buffer.from(toBinary(StatBlobResponseSchema, create(StatBlobResponseSchema, {}))));
        },
        Get(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) {
          const request = fromBinary(GetDirectoryRequestSchema, call.request);
          const digest = Digest.fromBytes(request.byWhat.value as Uint8Array);
          if (!digest.equals(A)) return callback({ code: grpc.status.NOT_FOUND, details: "no such directory" });
          callback(null, Buffer.from(encodeDirectory(DIRECTORY_A)));
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    blobs = GrpcBlobService.fromUrl(`grpc+http://127.0.0.1:${port}`);
    directories = GrpcDirectoryService.fromUrl(`grpc+http://127.0.0.1:${port}`);
  });
  afterAll(async () => {
    await Promise.all([blobs?.close(), directories?.close()]);
    server?.forceShutdown();
  });

  it("falls back to a Stat per blob and a Get per directory, with the same answers", async () => {
    const others = absent(20);
    expect(await blobs.has([present, ...others])).toEqual([true, ...others.map(() => false)]);
    expect(stats.length).toBe(21);
    expect(await blobs.has([present])).toEqual([true]); // the UNIMPLEMENTED is remembered: straight to Stat
    expect(stats.length).toBe(22);
    expect(await directories.has([A, B])).toEqual([true, false]);
  });

  it("says it takes no partial uploads", async () => {
    expect(await directories.partialUploads()).toBe(false);
  });
});

describe("PutPartial against a castore server whose store takes no partial uploads", () => {
  it("FindMissing says no, and PutPartial is UNIMPLEMENTED, storing nothing", async () => {
    // A service that says no, as one written before partial uploads (e.g. a wrapper that does not forward them).
    const service: DirectoryService = Object.create(new StoreDirectoryService(new MapDirectoryStore()), {
      partialUploads: { value: async () => false },
    });
    const server = createDirectoryServiceServer(service, { listen: { host: "127.0.0.1", port: 0 } });
    await server.listen();
    const client = GrpcDirectoryService.fromUrl(server.url!);
    try {
      expect(await client.partialUploads()).toBe(false);
      const putter = client.putMultipleStart({ partial: true });
      await putter.put(DIRECTORY_A);
      await expect(putter.close()).rejects.toThrow(/takes no partial uploads/);
      expect(await service.get(A)).toBeUndefined();
    } finally {
      await client.close();
      await server.close({ deadlineMs: 1000 });
    }
  });
});
