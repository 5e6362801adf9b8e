/**
 * The client side of castore.sync.v1.SyncService/FindMissing (spec §3.5):
 * which of many directories and blobs a server lacks, in one call per
 * FIND_BATCH digests. A server without the service (tvix, snix, an older
 * castore) answers UNIMPLEMENTED once; that is remembered, and the caller
 * asks the standard services instead.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { CorruptionError, type Digest } from "@castore-ts/core";
import { FindMissingRequestSchema, FindMissingResponseSchema } from "@castore-ts/proto";
import { type CallTarget, serverStreamingCall } from "./grpc-stream-calls.js";
import { SYNC_SERVICE } from "./sync-service-handler.js";

/** Digests per FindMissing call: 32 bytes each, well inside the 4 MiB message limit. */
export const FIND_BATCH = 50_000;

export class FindMissingClient {
  /** Set once the server has answered UNIMPLEMENTED. */
  private unsupported = false;
  /** What the server's last answer said of partial uploads (PutPartial), once known. */
  private partial: boolean | undefined;

  constructor(
    private readonly target: CallTarget,
    private readonly address: string,
  ) {}

  /**
   * For each digest, whether the server holds it; undefined when the server
   * has no SyncService (the caller falls back to the standard calls).
   */
  async has(
    kind: "directories" | "blobs",
    digests: readonly Digest[],
    signal?: AbortSignal,
  ): Promise<boolean[] | undefined> {
    if (this.unsupported) return undefined;
    const out: boolean[] = [];
    for (let i = 0; i < digests.length; i += FIND_BATCH) {
      const batch = digests.slice(i, i + FIND_BATCH);
      const missing = await this.call(kind, batch, signal);
      if (missing === undefined) return undefined;
      for (const d of batch) out.push(!missing.has(d.hex));
    }
    return out;
  }

  /**
   * Whether the server takes partial uploads (castore.sync.v1 PutPartial):
   * what its FindMissing answers say, asked with an empty request the first
   * time; no for a server without the service.
   */
  async partialUploads(signal?: AbortSignal): Promise<boolean> {
    if (this.partial === undefined && !this.unsupported) await this.call("directories", [], signal);
    return this.partial === true;
  }

  /** One call: the hex digests the server says are missing, or undefined after UNIMPLEMENTED. */
  private async call(
    kind: "directories" | "blobs",
    digests: readonly Digest[],
    signal: AbortSignal | undefined,
  ): Promise<Set<string> | undefined> {
    const request = create(FindMissingRequestSchema, { [kind]: digests.map((d) => d.bytes) });
    const messages: Uint8Array[] = [];
    try {
      const path = `/${SYNC_SERVICE}/FindMissing`;
      for await (const batch of serverStreamingCall(
        this.target,
        path,
        toBinary(FindMissingRequestSchema, request),
        signal,
      ))
        messages.push(...batch);
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.Unimplemented && !signal?.aborted) {
        this.unsupported = true;
        return undefined;
      }
      throw e;
    }
    if (messages.length !== 1)
      throw new CorruptionError(`${this.address}: FindMissing answered ${messages.length} messages, not one`);
    let response;
    try {
      response = fromBinary(FindMissingResponseSchema, messages[0]);
    } catch (e) {
      throw new CorruptionError(`${this.address}: FindMissing: invalid FindMissingResponse: ${(e as Error).message}`);
    }
    this.partial = response.partialUploads;
    const asked = new Set(digests.map((d) => d.hex));
    const missing = new Set<string>();
    const answered = kind === "directories" ? response.missingDirectories : response.missingBlobs;
    for (const bytes of answered) {
      const hex = Buffer.from(bytes).toString("hex");
      if (bytes.length !== 32 || !asked.has(hex))
        throw new CorruptionError(
          `${this.address}: FindMissing named ${hex || "an empty digest"}, which was not asked about`,
        );
      missing.add(hex);
    }
    return missing;
  }
}
