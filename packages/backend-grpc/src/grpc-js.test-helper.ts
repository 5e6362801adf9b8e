/**
 * @grpc/grpc-js fixtures: the .proto files loaded with @grpc/proto-loader,
 * conversion between grpc-js plain objects and castore Directories, a
 * grpc-js server serving a castore DirectoryService, and a raw-bytes client.
 */
import { createRequire } from "node:module";
import { dirname } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import {
  Digest,
  type Directory,
  type DirectoryService,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
} from "@castore-ts/core";

/** Where @castore-ts/proto keeps its .proto files (they ship with the package). */
export const PROTO_ROOT = dirname(createRequire(import.meta.url).resolve("@castore-ts/proto/package.json"));

export interface PlainDirectory {
  directories: { name: Buffer; digest: Buffer; size: string }[];
  files: { name: Buffer; digest: Buffer; size: string; executable: boolean }[];
  symlinks: { name: Buffer; target: Buffer }[];
}

type ServiceCtor = grpc.ServiceClientConstructor;

export function loadServices(): { tvix: ServiceCtor; snix: ServiceCtor } {
  const def = protoLoader.loadSync(["tvix/castore/v1/rpc_directory.proto", "snix/castore/v1/rpc_directory.proto"], {
    includeDirs: [PROTO_ROOT],
    longs: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    tvix: { castore: { v1: { DirectoryService: ServiceCtor } } };
    snix: { castore: { v1: { DirectoryService: ServiceCtor } } };
  };
  return { tvix: pkg.tvix.castore.v1.DirectoryService, snix: pkg.snix.castore.v1.DirectoryService };
}

export function toPlain(d: Directory): PlainDirectory {
  return {
    directories: d.directories.map((n) => ({
      name: Buffer.from(n.name),
      digest: Buffer.from(n.digest),
      size: n.size.toString(),
    })),
    files: d.files.map((n) => ({
      name: Buffer.from(n.name),
      digest: Buffer.from(n.digest),
      size: n.size.toString(),
      executable: n.executable,
    })),
    symlinks: d.symlinks.map((n) => ({ name: Buffer.from(n.name), target: Buffer.from(n.target) })),
  };
}

const u8 = (b: Buffer) => new Uint8Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));

export function fromPlain(p: PlainDirectory): Directory {
  return makeDirectory({
    directories: p.directories.map((n) => makeDirectoryNode(u8(n.name), u8(n.digest), BigInt(n.size))),
    files: p.files.map((n) => makeFileNode(u8(n.name), u8(n.digest), BigInt(n.size), n.executable)),
    symlinks: p.symlinks.map((n) => makeSymlinkNode(u8(n.name), u8(n.target))),
  });
}

/** grpc-js address for a store URL of ours: "127.0.0.1:port" or "unix:///path". */
export function grpcJsAddress(url: string): string {
  const u = new URL(url);
  if (u.protocol === "grpc+unix:") return `unix://${u.pathname}`;
  return u.host;
}

export type StreamCall = grpc.ClientReadableStream<unknown>;

/** Reads a server stream to the end: its messages and final status. */
export function readAll<T>(call: grpc.ClientReadableStream<T>): Promise<{ messages: T[]; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const messages: T[] = [];
    call.on("data", (m: T) => messages.push(m));
    call.on("error", (error: grpc.ServiceError) => resolve({ messages, error }));
    call.on("end", () => resolve({ messages }));
  });
}

/** A grpc-js client that sends and receives raw bytes (pass-through serializers). */
export function rawClient(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure());
}

const identity = (b: Buffer) => b;

export function rawGet(client: grpc.Client, request: Uint8Array, service = "tvix") {
  return readAll<Buffer>(
    client.makeServerStreamRequest(
      `/${service}.castore.v1.DirectoryService/Get`,
      identity,
      identity,
      Buffer.from(request),
    ),
  );
}

/** Sends raw messages as a Put stream; resolves to the response bytes or the error. */
export function rawPut(
  client: grpc.Client,
  messages: Uint8Array[],
  opts: { cancelAfterWrite?: boolean } = {},
): Promise<{ response?: Buffer; error?: grpc.ServiceError; call: grpc.ClientWritableStream<Buffer> }> {
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(
      "/tvix.castore.v1.DirectoryService/Put",
      identity,
      identity,
      (error: grpc.ServiceError | null, response?: Buffer) => resolve(error ? { error, call } : { response, call }),
    );
    for (const m of messages) call.write(Buffer.from(m));
    if (opts.cancelAfterWrite) {
      // give the server time to receive what was written, then hang up
      setTimeout(() => call.cancel(), 100);
    } else {
      call.end();
    }
  });
}

/** Hand-encoded GetDirectoryRequest; it lives in @castore-ts/testing, which the e2e fuzz test shares. */
export { encodeGetRequest } from "@castore-ts/testing";

/**
 * A grpc-js server serving `service` the way tvix does: Get of an absent
 * digest is NOT_FOUND (also when recursive), and any failed upload is
 * INTERNAL with the message.
 */
export async function startGrpcJsServer(
  service: DirectoryService,
  services = loadServices(),
): Promise<{ address: string; server: grpc.Server; close(): Promise<void> }> {
  const impl: grpc.UntypedServiceImplementation = {
    Get(call: grpc.ServerWritableStream<{ digest?: Buffer; recursive: boolean; byWhat?: string }, PlainDirectory>) {
      void (async () => {
        try {
          const req = call.request;
          if (req.byWhat !== "digest" || !req.digest) {
            call.emit("error", { code: grpc.status.INVALID_ARGUMENT, details: "by_what needed" });
            return;
          }
          const digest = Digest.fromBytes(req.digest);
          if (!req.recursive) {
            const d = await service.get(digest);
            if (!d) {
              call.emit("error", { code: grpc.status.NOT_FOUND, details: `directory ${digest} not found` });
              return;
            }
            call.write(toPlain(d));
            call.end();
            return;
          }
          let sent = 0;
          for await (const d of service.getRecursive(digest)) {
            call.write(toPlain(d));
            sent++;
          }
          if (sent === 0) {
            call.emit("error", { code: grpc.status.NOT_FOUND, details: `directory ${digest} not found` });
            return;
          }
          call.end();
        } catch (e) {
          call.emit("error", { code: grpc.status.INTERNAL, details: (e as Error).message });
        }
      })();
    },
    Put(call: grpc.ServerReadableStream<PlainDirectory, unknown>, callback: grpc.sendUnaryData<unknown>) {
      const putter = service.putMultipleStart();
      let chain: Promise<void> = Promise.resolve();
      let failed: Error | undefined;
      call.on("data", (p: PlainDirectory) => {
        chain = chain.then(async () => {
          if (failed) return;
          try {
            await putter.put(fromPlain(p));
          } catch (e) {
            failed = e as Error;
          }
        });
      });
      call.on("end", () => {
        void chain.then(async () => {
          try {
            if (failed) throw failed;
            const root = await putter.close();
            callback(null, { rootDigest: Buffer.from(root.bytes) });
          } catch (e) {
            await putter.abort(e).catch(() => {});
            callback({ code: grpc.status.INTERNAL, details: (e as Error).message });
          }
        });
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
