/**
 * S3RefStore: refs (spec §9) as objects `refs/<name>` under the store's
 * prefix, each holding the digest as 64 lowercase hex digits and a newline.
 * Ref names are ASCII path-like names (core's checkRefName), so a name is its
 * key as it is, and S3 lists keys in byte order: the order listRefs promises.
 *
 * Compare-and-set is done with S3's conditional writes, against the ETag the
 * read gave: create with `If-None-Match: *`, replace with `If-Match: <ETag>`,
 * delete with DeleteObject `If-Match: <ETag>`. A 412 (or 409, a conditional
 * write that lost a race on AWS) means another writer changed the ref between
 * the read and the write: the ref is read again and the step decided again.
 *
 * That is atomic only on a server that honours the conditions (AWS S3 since
 * 2024, MinIO). s3rver, the test server, ignores If-Match and If-None-Match
 * on PUT and DELETE: there two racing swaps from one value can both
 * "succeed", the later write winning. The conformance run declares that
 * (capability atomicRefSwap); docs/backends.md says so too. Where a server
 * answers 501 to a conditional DELETE, the delete goes on without the
 * condition after the read-and-compare: not atomic, and said here.
 */
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import {
  type CallOptions,
  CorruptionError,
  Digest,
  type Ref,
  type RefExpectation,
  type RefListOptions,
  type RefStore,
  type SwapResult,
  compareRefNames,
  refHolds,
  throwIfAborted,
} from "@castore-ts/core";
import { isNotFound, isNotImplemented, isPreconditionFailed, s3Status } from "./s3-errors.js";
import { type S3ConnectionOptions, S3Objects, connectionOptionsFromUrl } from "./s3-objects.js";

/** Rounds of read-compare-write one compareAndSetRef makes before giving up (each lost only to another writer). */
const MAX_SWAP_ROUNDS = 20;

interface StoredRef {
  digest: Digest;
  etag: string;
}

export class S3RefStore implements RefStore {
  readonly objects: S3Objects;

  constructor(opts: S3ConnectionOptions | S3Objects) {
    this.objects = opts instanceof S3Objects ? opts : new S3Objects(opts);
  }

  static fromUrl(url: URL | string): S3RefStore {
    return new S3RefStore(connectionOptionsFromUrl(url));
  }

  /** Where every ref's key begins: `<prefix>refs/`. */
  get refsPrefix(): string {
    return this.objects.key("refs/");
  }

  refKey(name: string): string {
    return `${this.refsPrefix}${name}`;
  }

  /** 1 GET. */
  async getRef(name: string, opts: CallOptions = {}): Promise<Digest | undefined> {
    return (await this.read(name, opts.signal))?.digest;
  }

  /**
   * 1 GET, then 1 conditional PUT or DELETE when the ref holds `expect`. More
   * rounds only when another writer changed the ref in between.
   */
  async compareAndSetRef(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    opts: CallOptions = {},
  ): Promise<SwapResult> {
    const signal = opts.signal;
    for (let round = 1; round <= MAX_SWAP_ROUNDS; round++) {
      throwIfAborted(signal);
      // Always read first (even to create): on a server that ignores the conditions (s3rver) the comparison
      // is then still made, and only a race between the read and the write goes unnoticed.
      const current = await this.read(name, signal);
      if (!refHolds(current?.digest, expect)) return { swapped: false, current: current?.digest };
      let done: boolean;
      if (digest === null) done = current === undefined || (await this.remove(name, current.etag, signal));
      else done = await this.write(name, digest, current ? { ifMatch: current.etag } : { ifNoneMatch: true }, signal);
      if (done) return { swapped: true, current: current?.digest };
    }
    throw this.objects.wrap(
      new Error(`ref ${name} kept changing under ${MAX_SWAP_ROUNDS} attempts`),
      `compare-and-set of ${this.refKey(name)}`,
      signal,
    );
  }

  /**
   * Every ref under `opts.prefix`, in name order: 1 LIST per 1 000 refs, 1
   * GET each. The names are gathered and sorted first (a name each in
   * memory): S3 lists in byte order, but s3rver lists in the order of its
   * folders, where `a/b` comes before `a`.
   */
  async *listRefs(opts: RefListOptions = {}): AsyncIterable<Ref> {
    const base = this.refsPrefix;
    const names: string[] = [];
    for await (const o of this.objects.listObjectsWithTimes(`${base}${opts.prefix ?? ""}`, opts.signal))
      names.push(o.key.slice(base.length));
    names.sort(compareRefNames);
    for (const name of names) {
      const stored = await this.read(name, opts.signal);
      if (stored) yield { name, digest: stored.digest }; // removed since the listing: not a ref any more
    }
  }

  async close(): Promise<void> {
    await this.objects.close();
  }

  private async read(name: string, signal?: AbortSignal): Promise<StoredRef | undefined> {
    const key = this.refKey(name);
    let body: Uint8Array;
    let etag: string;
    try {
      const res = await this.objects.client.send(
        new GetObjectCommand({ Bucket: this.objects.location.bucket, Key: key }),
        {
          abortSignal: signal,
        },
      );
      body = await res.Body!.transformToByteArray();
      etag = res.ETag ?? "";
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw this.objects.wrap(e, `GET ${key}`, signal);
    }
    const text = Buffer.from(body).toString("latin1");
    if (!/^[0-9a-f]{64}\n$/.test(text))
      throw new CorruptionError(
        `ref object ${key} is damaged: it does not hold a digest (64 hex digits and a newline)`,
      );
    return { digest: Digest.parse(text.slice(0, 64)), etag };
  }

  /** A conditional PUT of the ref; false when the condition failed (another writer came first). */
  private async write(
    name: string,
    digest: Digest,
    condition: { ifMatch?: string; ifNoneMatch?: boolean },
    signal?: AbortSignal,
  ): Promise<boolean> {
    const key = this.refKey(name);
    try {
      await this.objects.client.send(
        new PutObjectCommand({
          Bucket: this.objects.location.bucket,
          Key: key,
          Body: Buffer.from(`${digest.hex}\n`, "latin1"),
          ContentType: "text/plain",
          ...(condition.ifMatch !== undefined ? { IfMatch: condition.ifMatch } : {}),
          ...(condition.ifNoneMatch ? { IfNoneMatch: "*" } : {}),
        }),
        { abortSignal: signal },
      );
      return true;
    } catch (e) {
      if (lostRace(e)) return false;
      throw this.objects.wrap(e, `PUT ${key}`, signal);
    }
  }

  /** A DELETE of the ref if it still has `etag`; false when it changed. */
  private async remove(name: string, etag: string, signal?: AbortSignal): Promise<boolean> {
    const key = this.refKey(name);
    const send = (conditional: boolean) =>
      this.objects.client.send(
        new DeleteObjectCommand({
          Bucket: this.objects.location.bucket,
          Key: key,
          ...(conditional ? { IfMatch: etag } : {}),
        }),
        { abortSignal: signal },
      );
    try {
      await send(true);
      return true;
    } catch (e) {
      if (lostRace(e)) return false;
      if (isNotFound(e)) return false; // deleted by another writer since the read: decide again
      if (isNotImplemented(e)) {
        // No conditional DELETE on this server: the read compared, the delete follows unconditionally (not atomic).
        await send(false).catch((e2: unknown) => {
          throw this.objects.wrap(e2, `DELETE ${key}`, signal);
        });
        return true;
      }
      throw this.objects.wrap(e, `DELETE ${key}`, signal);
    }
  }
}

/** 412 Precondition Failed, or 409 ConditionalRequestConflict (AWS: a concurrent conditional write won). */
function lostRace(e: unknown): boolean {
  const { name, status } = s3Status(e);
  return isPreconditionFailed(e) || name === "ConditionalRequestConflict" || status === 409;
}
