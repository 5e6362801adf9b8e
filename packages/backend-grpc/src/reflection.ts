/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha
 * ServerReflection/ServerReflectionInfo) for a castore server: lists the
 * services served and answers file_by_filename and file_containing_symbol
 * with serialized FileDescriptorProtos, dependencies included, from the
 * protobuf-es generated descriptors.
 */
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { create, createRegistry, type DescFile, type DescMessage, type Registry, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  file_castore_refs_v1_refs,
  file_castore_sync_v1_sync,
  file_grpc_health_v1_health,
  file_grpc_reflection_v1_reflection,
  file_grpc_reflection_v1alpha_reflection,
  file_snix_castore_v1_rpc_blobstore,
  file_snix_castore_v1_rpc_directory,
  file_tvix_castore_v1_rpc_blobstore,
  file_tvix_castore_v1_rpc_directory,
  ServerReflection,
  ServerReflectionResponseSchema,
  ServerReflectionV1alpha,
  ServerReflectionV1alphaResponseSchema,
} from "@castore-ts/proto";

export const REFLECTION_SERVICE_NAMES = [
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
] as const;

export interface ReflectionOptions {
  /** Full names of the services served, as listed by list_services. */
  services: readonly string[];
}

interface FileRegistry {
  get: Registry["get"];
  getMessage: Registry["getMessage"];
  getFile(name: string): DescFile | undefined;
}

/** Every file the server's services are declared in, with their dependencies. */
function fileRegistry(): FileRegistry {
  const roots = [
    file_tvix_castore_v1_rpc_directory,
    file_snix_castore_v1_rpc_directory,
    file_tvix_castore_v1_rpc_blobstore,
    file_snix_castore_v1_rpc_blobstore,
    file_castore_refs_v1_refs,
    file_castore_sync_v1_sync,
    file_grpc_health_v1_health,
    file_grpc_reflection_v1_reflection,
    file_grpc_reflection_v1alpha_reflection,
  ];
  const files = new Map<string, DescFile>();
  for (const root of roots) for (const f of withDependencies(root)) files.set(f.proto.name, f);
  const types = createRegistry(...files.values());
  return {
    get: (name) => types.get(name),
    getMessage: (name) => types.getMessage(name),
    getFile: (name) => files.get(name),
  };
}

/** The file and its transitive dependencies, the file first, each once. */
function withDependencies(file: DescFile): DescFile[] {
  const out: DescFile[] = [];
  const seen = new Set<string>();
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(f);
    for (const d of f.dependencies) visit(d);
  };
  visit(file);
  return out;
}

/** The file declaring a fully-qualified symbol: a message, enum, service, method, field or enum value. */
function fileOfSymbol(registry: FileRegistry, symbol: string): DescFile | undefined {
  const direct = registry.get(symbol);
  if (direct) return direct.file;
  // pkg.Service.Method, pkg.Message.field, pkg.Enum.VALUE: the parent declares it.
  const dot = symbol.lastIndexOf(".");
  if (dot <= 0) return undefined;
  const parent = registry.get(symbol.slice(0, dot));
  if (!parent) return undefined;
  const member = symbol.slice(dot + 1);
  switch (parent.kind) {
    case "service":
      return parent.methods.some((m) => m.name === member) ? parent.file : undefined;
    case "message":
      return parent.fields.some((f) => f.name === member) || parent.oneofs.some((o) => o.name === member)
        ? parent.file
        : undefined;
    case "enum":
      return parent.values.some((v) => v.name === member) ? parent.file : undefined;
    default:
      return undefined;
  }
}

type Request = {
  host: string;
  messageRequest:
    | { case: "fileByFilename" | "fileContainingSymbol" | "allExtensionNumbersOfType" | "listServices"; value: string }
    | { case: "fileContainingExtension"; value: unknown }
    | { case: undefined; value?: undefined };
};

/** The response for one request, as an init object for either version's schema. */
function answer(
  registry: FileRegistry,
  services: readonly string[],
  req: Request,
  sent: Set<string>,
): Record<string, unknown> {
  const files = (file: DescFile | undefined, what: string) => {
    if (!file) return error(Code.NotFound, `${what} not found`);
    // Files already sent on this stream may be left out (the protocol allows it), but the requested one always goes.
    const list = withDependencies(file).filter((f, i) => i === 0 || !sent.has(f.proto.name));
    for (const f of list) sent.add(f.proto.name);
    return {
      case: "fileDescriptorResponse",
      value: { fileDescriptorProto: list.map((f) => toBinary(FileDescriptorProtoSchema, f.proto)) },
    };
  };
  const error = (code: Code, message: string) => ({
    case: "errorResponse",
    value: { errorCode: code, errorMessage: message },
  });
  const r = req.messageRequest;
  let messageResponse;
  switch (r.case) {
    case "listServices":
      messageResponse = { case: "listServicesResponse", value: { service: services.map((name) => ({ name })) } };
      break;
    case "fileByFilename":
      messageResponse = files(registry.getFile(r.value), `file ${JSON.stringify(r.value)}`);
      break;
    case "fileContainingSymbol":
      messageResponse = files(fileOfSymbol(registry, r.value), `symbol ${JSON.stringify(r.value)}`);
      break;
    case "fileContainingExtension":
      messageResponse = error(Code.NotFound, "no extensions are declared");
      break;
    case "allExtensionNumbersOfType":
      messageResponse = registry.getMessage(r.value)
        ? { case: "allExtensionNumbersResponse", value: { baseTypeName: r.value, extensionNumber: [] } }
        : error(Code.NotFound, `type ${JSON.stringify(r.value)} not found`);
      break;
    default:
      messageResponse = error(Code.InvalidArgument, "the request sets no message_request");
  }
  return { validHost: req.host, originalRequest: req, messageResponse };
}

/** Registers grpc.reflection.v1 and v1alpha ServerReflection on a connect router. */
export function reflectionRoutes(opts: ReflectionOptions): (router: ConnectRouter) => void {
  const registry = fileRegistry();
  const services = [...opts.services];
  const impl = (schema: DescMessage) => ({
    async *serverReflectionInfo(requests: AsyncIterable<Request>) {
      const sent = new Set<string>();
      for await (const req of requests) {
        yield create(schema, answer(registry, services, req, sent) as never);
      }
    },
  });
  return (router) => {
    router.service(ServerReflection, impl(ServerReflectionResponseSchema) as never);
    router.service(ServerReflectionV1alpha, impl(ServerReflectionV1alphaResponseSchema) as never);
  };
}
