/**
 * castore's refs extension service (castore.refs.v1.RefService, spec §9) on
 * top of a core RefService: Get, Set, Delete and List. Set checks the
 * closure here, on the server, against the server's own store; a lost
 * compare-and-swap is answered (swapped = false, with what the ref holds),
 * not raised, so the client can say what won.
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { Digest, type Ref, type RefService, type SwapResult } from "@castore-ts/core";
import {
  DeleteRefRequestSchema,
  GetRefRequestSchema,
  GetRefResponseSchema,
  ListRefsRequestSchema,
  RefSchema,
  type RefExpectation,
  SetRefRequestSchema,
  SwapRefResponseSchema,
} from "@castore-ts/proto";
import type { MessageSource } from "./message-batcher.js";
import { requestDigest } from "./blob-service-handler.js";
import { invalidArgument } from "./status.js";
import { type Call, type Route, singleMessage } from "./grpc-call-handler.js";

/** The service's path prefix. */
export const REF_SERVICE = "castore.refs.v1.RefService";

/** The RefService's routes, by path. */
export function refRoutes(refs: RefService): Map<string, Route> {
  const routes = new Map<string, Route>();
  routes.set(`/${REF_SERVICE}/Get`, { rpc: "Get", open: openGet });
  routes.set(`/${REF_SERVICE}/Set`, { rpc: "Set", open: openSet });
  routes.set(`/${REF_SERVICE}/Delete`, { rpc: "Delete", open: openDelete });
  routes.set(`/${REF_SERVICE}/List`, { rpc: "List", open: openList });
  return routes;

  async function openGet(call: Call): Promise<MessageSource<Uint8Array>> {
    const request = await parse(call, "Get", GetRefRequestSchema);
    const digest = await refs.get(request.name, { signal: call.signal });
    if (!digest) throw new ConnectError(`no ref ${request.name}`, Code.NotFound);
    return one(toBinary(GetRefResponseSchema, create(GetRefResponseSchema, { digest: digest.bytes })));
  }

  async function openSet(call: Call): Promise<MessageSource<Uint8Array>> {
    const request = await parse(call, "Set", SetRefRequestSchema);
    const digest = requestDigest(request.digest, "SetRefRequest.digest");
    const result = await refs.trySet(request.name, digest, {
      expect: expectationOf(request.expect),
      signal: call.signal,
    });
    return one(swapResponse(result));
  }

  async function openDelete(call: Call): Promise<MessageSource<Uint8Array>> {
    const request = await parse(call, "Delete", DeleteRefRequestSchema);
    const result = await refs.tryDelete(request.name, { expect: expectationOf(request.expect), signal: call.signal });
    return one(swapResponse(result));
  }

  async function openList(call: Call): Promise<MessageSource<Ref>> {
    const request = await parse(call, "List", ListRefsRequestSchema);
    const listed = refs.list({ prefix: request.prefix, signal: call.signal });
    return {
      items: listed,
      encode: (ref) => toBinary(RefSchema, create(RefSchema, { name: ref.name, digest: ref.digest.bytes })),
    };
  }
}

async function parse<Desc extends DescMessage>(call: Call, rpc: string, schema: Desc): Promise<MessageShape<Desc>> {
  const request = await singleMessage(call.messages(), rpc, schema.name);
  try {
    return fromBinary(schema, request);
  } catch (e) {
    throw invalidArgument(`request is not a valid ${schema.name}: ${(e as Error).message}`);
  }
}

function one(message: Uint8Array): MessageSource<Uint8Array> {
  return { items: [message], encode: (m) => m };
}

/** The wire's expectation as core's: a digest, null for "absent", undefined for none. */
export function expectationOf(expect: RefExpectation | undefined): Digest | null | undefined {
  switch (expect?.expect.case) {
    case "digest":
      return requestDigest(expect.expect.value, "RefExpectation.digest");
    case "absent":
      return null;
    default:
      return undefined;
  }
}

function swapResponse(result: SwapResult): Uint8Array {
  return toBinary(
    SwapRefResponseSchema,
    create(SwapRefResponseSchema, { swapped: result.swapped, current: result.current?.bytes ?? new Uint8Array(0) }),
  );
}
