/**
 * gRPC server reflection against a real server, called with @grpc/grpc-js.
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import { grpcJsAddress, PROTO_ROOT } from "./grpc-js.test-helper.js";
import { memoryService } from "./memory-store.test-helper.js";
import { MapBlobService } from "./blob-store.test-helper.js";
import { createDirectoryServiceServer } from "./server.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Response {
  messageResponse?: string;
  listServicesResponse?: { service: { name: string }[] };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

type ReflectionClient = grpc.Client & {
  ServerReflectionInfo(): grpc.ClientDuplexStream<Record<string, unknown>, Response>;
};

function reflectionClient(url: string, version: "v1" | "v1alpha"): ReflectionClient {
  const def = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
    includeDirs: [PROTO_ROOT],
    oneofs: true,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> };
  };
  const c = new pkg.grpc.reflection[version]!.ServerReflection(
    grpcJsAddress(url),
    grpc.credentials.createInsecure(),
  ) as unknown as ReflectionClient;
  cleanups.push(() => c.close());
  return c;
}

/** Sends the requests one at a time on one stream; returns the responses. */
async function ask(c: ReflectionClient, requests: Record<string, unknown>[]): Promise<Response[]> {
  const call = c.ServerReflectionInfo();
  const out: Response[] = [];
  const queue: ((r: Response) => void)[] = [];
  call.on("data", (r: Response) => queue.shift()?.(r));
  const ended = new Promise<void>((resolve, reject) => {
    call.on("end", resolve);
    call.on("error", reject);
  });
  for (const req of requests) {
    const next = new Promise<Response>((resolve) => queue.push(resolve));
    call.write(req);
    out.push(await next);
  }
  call.end();
  await ended;
  return out;
}

async function serve(blobs?: MapBlobService) {
  const server = createDirectoryServiceServer(memoryService().service, {
    listen: { host: "127.0.0.1", port: 0 },
    blobs,
  });
  await server.listen();
  cleanups.push(() => server.close({ deadlineMs: 500 }));
  return server;
}

describe("grpc.reflection ServerReflection", () => {
  it.each(["v1", "v1alpha"] as const)(
    "%s: lists the services; the DirectoryService descriptor names Get and Put",
    async (version) => {
      const server = await serve();
      const c = reflectionClient(server.url!, version);
      const [list, byService, byMethod, byFile, missing] = await ask(c, [
        { listServices: "" },
        { fileContainingSymbol: "tvix.castore.v1.DirectoryService" },
        { fileContainingSymbol: "snix.castore.v1.DirectoryService.Get" },
        { fileByFilename: "grpc/health/v1/health.proto" },
        { fileContainingSymbol: "no.such.Symbol" },
      ]);
      expect(list!.listServicesResponse!.service.map((s) => s.name).sort()).toEqual([
        "castore.sync.v1.SyncService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "snix.castore.v1.DirectoryService",
        "tvix.castore.v1.DirectoryService",
      ]);

      const files = byService!.fileDescriptorResponse!.fileDescriptorProto.map((b) =>
        fromBinary(FileDescriptorProtoSchema, b),
      );
      expect(files.map((f) => f.name)).toEqual([
        "tvix/castore/v1/rpc_directory.proto",
        "tvix/castore/v1/castore.proto",
      ]);
      const svc = files[0]!.service.find((s) => s.name === "DirectoryService")!;
      expect(files[0]!.package).toBe("tvix.castore.v1");
      expect(svc.method.map((m) => m.name)).toEqual(["Get", "Put"]);
      expect(svc.method.find((m) => m.name === "Put")!.clientStreaming).toBe(true);
      expect(svc.method.find((m) => m.name === "Get")!.serverStreaming).toBe(true);

      const snix = byMethod!.fileDescriptorResponse!.fileDescriptorProto.map((b) =>
        fromBinary(FileDescriptorProtoSchema, b),
      );
      expect(snix[0]!.name).toBe("snix/castore/v1/rpc_directory.proto");
      expect(
        fromBinary(FileDescriptorProtoSchema, byFile!.fileDescriptorResponse!.fileDescriptorProto[0]!).package,
      ).toBe("grpc.health.v1");
      expect(missing!.errorResponse!.errorCode).toBe(grpc.status.NOT_FOUND);
    },
  );
});

describe("grpc.reflection with blobs served", () => {
  it("lists both BlobService names; the BlobService descriptor names Stat, Read and Put", async () => {
    const server = await serve(new MapBlobService());
    const c = reflectionClient(server.url!, "v1");
    const [list, byService, snix] = await ask(c, [
      { listServices: "" },
      { fileContainingSymbol: "tvix.castore.v1.BlobService" },
      { fileContainingSymbol: "snix.castore.v1.BlobService.Read" },
    ]);
    const names = list!.listServicesResponse!.service.map((s) => s.name);
    expect(names).toContain("tvix.castore.v1.BlobService");
    expect(names).toContain("snix.castore.v1.BlobService");
    const file = fromBinary(FileDescriptorProtoSchema, byService!.fileDescriptorResponse!.fileDescriptorProto[0]!);
    expect(file.name).toBe("tvix/castore/v1/rpc_blobstore.proto");
    const svc = file.service.find((s) => s.name === "BlobService")!;
    expect(svc.method.map((m) => [m.name, m.clientStreaming, m.serverStreaming])).toEqual([
      ["Stat", false, false],
      ["Read", false, true],
      ["Put", true, false],
    ]);
    expect(fromBinary(FileDescriptorProtoSchema, snix!.fileDescriptorResponse!.fileDescriptorProto[0]!).name).toBe(
      "snix/castore/v1/rpc_blobstore.proto",
    );
  });
});
