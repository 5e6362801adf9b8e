/**
 * GrpcRefStore: core's RefStore over castore's refs extension service
 * (castore.refs.v1.RefService, ref-service-handler.ts). The server checks
 * closures against its own store, so `checksClosure` is set and RefService
 * does not read the tree over the network again. A server without the
 * service (tvix, snix, an older castore) answers UNIMPLEMENTED: a
 * BackendError saying the server has no refs.
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BackendError,
  CorruptionError,
  Digest,
  isCastoreError,
  type CallOptions,
  type Ref,
  type RefExpectation,
  type RefListOptions,
  type RefStore,
  type SwapResult,
} from "@castore-ts/core";
import {
  DeleteRefRequestSchema,
  GetRefRequestSchema,
  GetRefResponseSchema,
  ListRefsRequestSchema,
  RefExpectationSchema,
  RefSchema,
  SetRefRequestSchema,
  SwapRefResponseSchema,
} from "@castore-ts/proto";
import { type ClientConnectionOptions, GrpcClient, optionsFromUrl } from "./grpc-client-connection.js";
import { serverStreamingCall } from "./grpc-stream-calls.js";
import type { GrpcTarget } from "./grpc-url.js";
import { REF_SERVICE } from "./ref-service-handler.js";
import { fromConnectError } from "./status.js";

export class GrpcRefStore extends GrpcClient implements RefStore {
  readonly checksClosure = true;

  static fromUrl(url: string | URL, options: ClientConnectionOptions = {}): GrpcRefStore {
    const resolved = optionsFromUrl(url, options);
    return new GrpcRefStore(resolved.target, resolved.options);
  }

  constructor(target: GrpcTarget, options: ClientConnectionOptions = {}) {
    super(target, options);
  }

  async getRef(name: string, opts: CallOptions = {}): Promise<Digest | undefined> {
    const request = toBinary(GetRefRequestSchema, create(GetRefRequestSchema, { name }));
    try {
      const response = await this.unary("Get", request, GetRefResponseSchema, opts.signal);
      return this.digestOf(response.digest, `Get(${name})`);
    } catch (e) {
      if (e instanceof NoSuchRef) return undefined;
      throw e;
    }
  }

  async compareAndSetRef(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    opts: CallOptions = {},
  ): Promise<SwapResult> {
    const expectation = wireExpectation(expect);
    const response =
      digest === null
        ? await this.unary(
            "Delete",
            toBinary(DeleteRefRequestSchema, create(DeleteRefRequestSchema, { name, expect: expectation })),
            SwapRefResponseSchema,
            opts.signal,
          )
        : await this.unary(
            "Set",
            toBinary(
              SetRefRequestSchema,
              create(SetRefRequestSchema, { name, digest: digest.bytes, expect: expectation }),
            ),
            SwapRefResponseSchema,
            opts.signal,
          );
    const current = response.current.length === 0 ? undefined : this.digestOf(response.current, `swap of ${name}`);
    return { swapped: response.swapped, current };
  }

  async *listRefs(opts: RefListOptions = {}): AsyncIterable<Ref> {
    this.checkOpen();
    const request = toBinary(ListRefsRequestSchema, create(ListRefsRequestSchema, { prefix: opts.prefix ?? "" }));
    try {
      for await (const batch of serverStreamingCall(this.target, `/${REF_SERVICE}/List`, request, opts.signal)) {
        for (const message of batch) {
          const ref = this.decode(RefSchema, message, "List");
          yield { name: ref.name, digest: this.digestOf(ref.digest, `List: ref ${ref.name}`) };
        }
      }
    } catch (e) {
      throw this.wrap(e, opts.signal);
    }
  }

  /** One call with one message each way; NOT_FOUND (no such ref) is a NoSuchRef. */
  private async unary<Desc extends DescMessage>(
    rpc: string,
    request: Uint8Array,
    schema: Desc,
    signal: AbortSignal | undefined,
  ): Promise<MessageShape<Desc>> {
    this.checkOpen();
    const messages: Uint8Array[] = [];
    try {
      for await (const batch of serverStreamingCall(this.target, `/${REF_SERVICE}/${rpc}`, request, signal))
        messages.push(...batch);
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.NotFound && !signal?.aborted) throw new NoSuchRef();
      throw this.wrap(e, signal);
    }
    if (messages.length !== 1)
      throw new BackendError(this.address, `protocol error: ${rpc} answered ${messages.length} messages, not one`);
    return this.decode(schema, messages[0], rpc);
  }

  private decode<Desc extends DescMessage>(schema: Desc, message: Uint8Array, rpc: string): MessageShape<Desc> {
    try {
      return fromBinary(schema, message);
    } catch (e) {
      throw new CorruptionError(`${this.address}: ${rpc}: invalid ${schema.name}: ${(e as Error).message}`);
    }
  }

  private digestOf(bytes: Uint8Array, what: string): Digest {
    if (bytes.length !== 32)
      throw new CorruptionError(`${this.address}: ${what}: a ${bytes.length}-byte digest, not 32 bytes`);
    return Digest.fromBytes(bytes);
  }

  private wrap(error: unknown, signal: AbortSignal | undefined): Error {
    if (isCastoreError(error)) return error;
    if (error instanceof ConnectError && error.code === Code.Unimplemented && !signal?.aborted)
      return new BackendError(this.address, "the server stores no refs (no castore.refs.v1.RefService)", {
        cause: error,
      });
    return fromConnectError(error, this.address, signal);
  }
}

/** Get's NOT_FOUND, turned into "no ref" by getRef. */
class NoSuchRef extends Error {}

function wireExpectation(expect: RefExpectation) {
  if (expect === undefined) return undefined;
  return create(
    RefExpectationSchema,
    expect === null ? { expect: { case: "absent", value: true } } : { expect: { case: "digest", value: expect.bytes } },
  );
}
