/**
 * @grpc/grpc-js fixtures for the BlobService: the blob .proto files loaded
 * with @grpc/proto-loader, and a grpc-js server serving a castore
 * BlobService the way tvix does (Stat/Read of an absent digest NOT_FOUND,
 * Read in messages of at most 1 MiB, chunks readable by digest).
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { type BlobService, Digest } from "@castore-ts/core";
import { PROTO_ROOT } from "./grpc-js.test-helper.js";

type ServiceCtor = grpc.ServiceClientConstructor;

export type GrpcJsBlobClient = grpc.Client & {
  Stat(
    req: { digest: Buffer; sendChunks?: boolean },
    cb: (err: grpc.ServiceError | null, res?: { chunks: { digest: Buffer; size: string }[] }) => void,
  ): void;
  Read(req: { digest: Buffer }): grpc.ClientReadableStream<{ data: Buffer }>;
  Put(cb: (err: grpc.ServiceError | null, res?: { digest: Buffer }) => void): grpc.ClientWritableStream<{
    data: Uint8Array;
  }>;
};

export function loadBlobServices(): { tvix: ServiceCtor; snix: ServiceCtor } {
  const def = protoLoader.loadSync(["tvix/castore/v1/rpc_blobstore.proto", "snix/castore/v1/rpc_blobstore.proto"], {
    includeDirs: [PROTO_ROOT],
    longs: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    tvix: { castore: { v1: { BlobService: ServiceCtor } } };
    snix: { castore: { v1: { BlobService: ServiceCtor } } };
  };
  return { tvix: pkg.tvix.castore.v1.BlobService, snix: pkg.snix.castore.v1.BlobService };
}

/** Stat through grpc-js: the response, or the error. */
export function grpcJsStat(client: GrpcJsBlobClient, digest: Uint8Array, sendChunks = false) {
  return new Promise<{ chunks?: { digest: Buffer; size: string }[]; error?: grpc.ServiceError }>((resolve) =>
    client.Stat({ digest: Buffer.from(digest), sendChunks }, (error, res) =>
      resolve(error ? { error } : { chunks: res!.chunks }),
    ),
  );
}

/** Read through grpc-js: the bytes and message sizes, or the error. */
export function grpcJsRead(client: GrpcJsBlobClient, digest: Uint8Array) {
  return new Promise<{ bytes: Buffer; sizes: number[]; error?: grpc.ServiceError }>((resolve) => {
    const parts: Buffer[] = [];
    const call = client.Read({ digest: Buffer.from(digest) });
    call.on("data", (m: { data: Buffer }) => parts.push(m.data));
    call.on("error", (error: grpc.ServiceError) =>
      resolve({ bytes: Buffer.concat(parts), sizes: parts.map((p) => p.length), error }),
    );
    call.on("end", () => resolve({ bytes: Buffer.concat(parts), sizes: parts.map((p) => p.length) }));
  });
}

/** Put through grpc-js, the bytes in messages of `pieceSize`. */
export function grpcJsPut(client: GrpcJsBlobClient, bytes: Uint8Array, pieceSize: number) {
  return new Promise<{ digest?: Buffer; error?: grpc.ServiceError }>((resolve) => {
    const call = client.Put((error, res) => resolve(error ? { error } : { digest: res!.digest }));
    for (let at = 0; at < bytes.length; at += pieceSize) call.write({ data: bytes.subarray(at, at + pieceSize) });
    call.end();
  });
}

/** A grpc-js server serving `blobs` under both service names. */
export async function startGrpcJsBlobServer(
  blobs: BlobService,
): Promise<{ address: string; server: grpc.Server; close(): Promise<void> }> {
  const services = loadBlobServices();
  const impl: grpc.UntypedServiceImplementation = {
    Stat(
      call: grpc.ServerUnaryCall<{ digest: Buffer; sendChunks: boolean }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) {
      void (async () => {
        if (call.request.digest.length !== 32) return cb({ code: grpc.status.INVALID_ARGUMENT, details: "digest" });
        const stat = await blobs.stat(Digest.fromBytes(call.request.digest), { chunks: call.request.sendChunks });
        if (!stat) return cb({ code: grpc.status.NOT_FOUND, details: "blob not found" });
        const chunks = call.request.sendChunks
          ? (stat.chunks ?? []).map((c) => ({ digest: Buffer.from(c.digest.bytes), size: String(c.size) }))
          : [];
        cb(null, { chunks });
      })().catch((e: Error) => cb({ code: grpc.status.INTERNAL, details: e.message }));
    },
    Read(call: grpc.ServerWritableStream<{ digest: Buffer }, unknown>) {
      void (async () => {
        const bytes = await blobs.read(Digest.fromBytes(call.request.digest));
        if (!bytes) {
          call.emit("error", { code: grpc.status.NOT_FOUND, details: "blob not found" });
          return;
        }
        for await (const piece of bytes) {
          for (let at = 0; at < piece.length; at += 1 << 20) {
            call.write({ data: Buffer.from(piece.subarray(at, at + (1 << 20))) });
          }
        }
        call.end();
      })().catch((e: Error) => call.emit("error", { code: grpc.status.INTERNAL, details: e.message }));
    },
    Put(call: grpc.ServerReadableStream<{ data: Buffer }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      const writer = blobs.openWriter();
      let chain: Promise<void> = Promise.resolve();
      call.on("data", (m: { data: Buffer }) => {
        chain = chain.then(() => writer.write(m.data));
      });
      call.on("end", () => {
        chain
          .then(() => writer.close())
          .then(
            (written) => cb(null, { digest: Buffer.from(written.digest.bytes) }),
            async (e: Error) => {
              await writer.abort(e);
              cb({ code: grpc.status.INTERNAL, details: e.message });
            },
          );
      });
    },
  };
  const server = new grpc.Server();
  server.addService(services.tvix.service, impl);
  server.addService(services.snix.service, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    server,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
