/**
 * S3Objects: one bucket and prefix through one S3 client, with the object
 * operations both S3 services share (whole-object GET with a retried body,
 * conditional PUT, HEAD, LIST). It owns the client's construction from the
 * shared options (retry policy, socket timeout, keep-alive agents), so the
 * directory service and the blob store behave alike on the wire.
 */
import { setMaxListeners } from "node:events";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Readable } from "node:stream";
import {
  CopyObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  type ListObjectsCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { forwardAbort, throwIfAborted } from "@castore-ts/core";
import { BackoffRetryStrategy, type RetryOptions, resolveRetryOptions } from "./retry.js";
import { isNotFound, isNotImplemented, isPreconditionFailed, sleep, wrapS3Error } from "./s3-errors.js";
import { type ConditionalWrites, type S3Location, normalizePrefix, parseS3Url } from "./s3-url.js";

/** Where a store lives and how to talk to it: the options both S3 services take. */
export interface S3ConnectionOptions {
  bucket: string;
  /** Key prefix under which the store lives ("" or e.g. "castore/"; a trailing slash is added). */
  prefix?: string;
  /** A ready client (not destroyed by close()); otherwise one is built from `clientConfig`. */
  client?: S3Client;
  /** Settings for the client this service builds (endpoint, region, credentials, forcePathStyle, …). */
  clientConfig?: S3ClientConfig;
  /** Most requests one operation keeps in flight. Default 32. */
  concurrency?: number;
  /** Retries of failed requests (for a built client) and resumptions of interrupted downloads. */
  retry?: RetryOptions;
  /**
   * A connection silent this long is dropped and the request retried (a
   * stalled download resumes where it stopped). Default 60 000 ms; 0: never.
   */
  socketTimeoutMs?: number;
  /** Whether PUTs carry `If-None-Match: *`. Default "auto". */
  conditionalWrites?: ConditionalWrites;
}

export const DEFAULT_CONCURRENCY = 32;
export const DEFAULT_SOCKET_TIMEOUT_MS = 60_000;

/** The connection options an `s3:` URL names (see parseS3Url for the forms). */
export function connectionOptionsFromUrl(url: URL | string): S3ConnectionOptions {
  const u = parseS3Url(url);
  const region =
    u.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (u.endpoint ? "us-east-1" : undefined);
  return {
    bucket: u.bucket,
    prefix: u.prefix,
    clientConfig: {
      ...(u.endpoint ? { endpoint: u.endpoint } : {}),
      ...(region ? { region } : {}),
      forcePathStyle: u.forcePathStyle,
      ...(u.credentials ? { credentials: u.credentials } : {}),
    },
    concurrency: u.concurrency,
    retry: u.retry,
    socketTimeoutMs: u.socketTimeoutMs,
    conditionalWrites: u.conditionalWrites,
  };
}

/** An AbortController that also fires when `parent` does; `dispose` unhooks it. */
export function linkedController(parent?: AbortSignal): { controller: AbortController; dispose(): void } {
  const controller = new AbortController();
  // One listener per request in flight: an operation keeps up to `concurrency` of them.
  setMaxListeners(0, controller.signal);
  return { controller, dispose: forwardAbort(parent, controller) };
}

export class S3Objects {
  readonly client: S3Client;
  readonly location: S3Location;
  /** Names the store in errors: bucket, prefix and endpoint, never credentials. */
  readonly backend: string;
  readonly concurrency: number;
  readonly retry: Required<RetryOptions>;
  private readonly ownsClient: boolean;
  /** Whether PUTs send If-None-Match: * (turned off in "auto" mode when the server answers 501). */
  private conditional: boolean;
  private readonly conditionalMode: ConditionalWrites;

  constructor(opts: S3ConnectionOptions) {
    this.location = { bucket: opts.bucket, prefix: normalizePrefix(opts.prefix ?? "") };
    this.concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new RangeError(`concurrency must be a positive integer, got ${opts.concurrency}`);
    }
    this.retry = resolveRetryOptions(opts.retry);
    this.conditionalMode = opts.conditionalWrites ?? "auto";
    this.conditional = this.conditionalMode !== false;
    if (opts.client) {
      this.client = opts.client;
      this.ownsClient = false;
    } else {
      const maxSockets = Math.max(64, this.concurrency * 2);
      this.client = new S3Client({
        maxAttempts: this.retry.maxAttempts,
        retryStrategy: new BackoffRetryStrategy(this.retry),
        requestHandler: {
          httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
          httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
          connectionTimeout: 10_000,
          socketTimeout: opts.socketTimeoutMs ?? DEFAULT_SOCKET_TIMEOUT_MS,
        },
        ...opts.clientConfig,
      });
      this.ownsClient = true;
    }
    const endpoint = opts.clientConfig?.endpoint;
    let shown = "";
    if (typeof endpoint === "string") {
      try {
        shown = ` at ${new URL(endpoint).origin}`; // origin: no user info, path or query
      } catch {
        shown = " at an invalid endpoint";
      }
    }
    this.backend = `s3://${this.location.bucket}/${this.location.prefix}${shown}`;
  }

  /** The full key of `name` under the store's prefix. */
  key(name: string): string {
    return `${this.location.prefix}${name}`;
  }

  wrap(error: unknown, what: string, signal?: AbortSignal): unknown {
    return wrapS3Error(this.backend, error, what, signal);
  }

  /** A full-jitter exponential wait before attempt `attempt + 1` of something the SDK does not retry itself. */
  backoff(attempt: number): number {
    return Math.floor(Math.random() * Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1)));
  }

  /** A whole (small) object, or undefined when absent; an interrupted body is fetched again. */
  async getBytes(key: string, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(signal);
      let res;
      try {
        res = await this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: key }), {
          abortSignal: signal,
        });
      } catch (e) {
        if (isNotFound(e)) return undefined;
        throw this.wrap(e, `GET ${key}`, signal);
      }
      try {
        return await res.Body!.transformToByteArray();
      } catch (e) {
        (res.Body as Readable | undefined)?.destroy?.();
        if (signal?.aborted || attempt >= this.retry.maxAttempts)
          throw this.wrap(e, `GET ${key} (reading the body)`, signal);
        await sleep(this.backoff(attempt), signal);
      }
    }
  }

  /**
   * PUTs an object, with If-None-Match: * when enabled. Returns false when it
   * was already there (412 from a server that honours the condition).
   */
  async putIfAbsent(key: string, body: Uint8Array, signal?: AbortSignal): Promise<boolean> {
    for (;;) {
      const conditional = this.conditional;
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.location.bucket,
            Key: key,
            Body: body,
            ContentType: "application/octet-stream",
            ...(conditional ? { IfNoneMatch: "*" } : {}),
          }),
          { abortSignal: signal },
        );
        return true;
      } catch (e) {
        if (conditional && isPreconditionFailed(e)) return false;
        if (conditional && this.conditionalMode === "auto" && isNotImplemented(e)) {
          this.conditional = false; // the server does not do conditional writes: plain PUTs from now on
          continue;
        }
        throw this.wrap(e, `PUT ${key}`, signal);
      }
    }
  }

  /** A plain PUT, replacing what is there (repair only: uploads never overwrite). */
  async putReplacing(key: string, body: Uint8Array, signal?: AbortSignal): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.location.bucket,
          Key: key,
          Body: body,
          ContentType: "application/octet-stream",
        }),
        { abortSignal: signal },
      );
    } catch (e) {
      throw this.wrap(e, `PUT ${key}`, signal);
    }
  }

  /** The object's length (1 HEAD), or undefined when absent. */
  async head(key: string, signal?: AbortSignal): Promise<number | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: key }), {
        abortSignal: signal,
      });
      return res.ContentLength ?? 0;
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw this.wrap(e, `HEAD ${key}`, signal);
    }
  }

  /**
   * One listing request: up to `maxKeys` keys under `prefix` that sort after
   * `marker`, in key order, and whether more follow. ListObjects (v1) with a
   * Marker, not v2: a caller that restarts after a key of its choosing needs
   * no continuation token, and s3rver (the test server) cannot make v2 tokens
   * under OpenSSL 3 (it answers 500 to every truncated v2 listing).
   */
  async listAfter(
    query: { prefix: string; marker?: string; maxKeys?: number },
    signal?: AbortSignal,
  ): Promise<{ keys: string[]; truncated: boolean }> {
    throwIfAborted(signal);
    let res: ListObjectsCommandOutput;
    try {
      res = await this.client.send(
        new ListObjectsCommand({
          Bucket: this.location.bucket,
          Prefix: query.prefix,
          Marker: query.marker,
          MaxKeys: query.maxKeys,
        }),
        { abortSignal: signal },
      );
    } catch (e) {
      throw this.wrap(e, `LIST ${query.prefix}`, signal);
    }
    const keys: string[] = [];
    for (const object of res.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
    return { keys, truncated: res.IsTruncated === true };
  }

  /** Every key under `prefix` (one ListObjectsV2 request per 1 000). */
  async *listKeys(prefix: string, signal?: AbortSignal): AsyncGenerator<string, void, undefined> {
    let token: string | undefined;
    do {
      throwIfAborted(signal);
      let res: ListObjectsV2CommandOutput;
      try {
        res = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: prefix, ContinuationToken: token }),
          { abortSignal: signal },
        );
      } catch (e) {
        throw this.wrap(e, `LIST ${prefix}`, signal);
      }
      for (const object of res.Contents ?? []) if (object.Key !== undefined) yield object.Key;
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Every object under `prefix` with its size and LastModified, in key order
   * (one ListObjects request per 1 000; v1 with a Marker, as listAfter).
   */
  async *listObjectsWithTimes(prefix: string, signal?: AbortSignal): AsyncGenerator<ListedObject, void, undefined> {
    let marker: string | undefined;
    for (;;) {
      throwIfAborted(signal);
      let res: ListObjectsCommandOutput;
      try {
        res = await this.client.send(
          new ListObjectsCommand({ Bucket: this.location.bucket, Prefix: prefix, Marker: marker }),
          { abortSignal: signal },
        );
      } catch (e) {
        throw this.wrap(e, `LIST ${prefix}`, signal);
      }
      const contents = res.Contents ?? [];
      for (const o of contents) {
        if (o.Key === undefined || o.LastModified === undefined) continue;
        yield { key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified };
      }
      if (res.IsTruncated !== true || contents.length === 0) return;
      marker = contents[contents.length - 1].Key;
    }
  }

  /** Size and LastModified of an object (1 HEAD), or undefined when absent. */
  async stat(key: string, signal?: AbortSignal): Promise<{ size: number; lastModified: Date } | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: key }), {
        abortSignal: signal,
      });
      return { size: res.ContentLength ?? 0, lastModified: res.LastModified ?? new Date(0) };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw this.wrap(e, `HEAD ${key}`, signal);
    }
  }

  /**
   * Marks an object as used now: 1 CopyObject of the object onto itself with
   * MetadataDirective REPLACE, which gives it a new LastModified on S3 and
   * MinIO. (s3rver only rewrites its metadata file and keeps the old
   * LastModified: there a touch says whether the object is stored but does
   * not make it younger; see README "Garbage collection".) False when absent.
   */
  async touch(key: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.location.bucket,
          Key: key,
          CopySource: `${this.location.bucket}/${key.split("/").map(encodeURIComponent).join("/")}`,
          MetadataDirective: "REPLACE",
          ContentType: "application/octet-stream",
        }),
        { abortSignal: signal },
      );
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw this.wrap(e, `COPY ${key} onto itself`, signal);
    }
  }

  /**
   * PUTs an object unless it is there (If-None-Match: *), and touches it when
   * it is: after this the object is stored and used now (spec §10.2, the
   * touch rules). A touch that finds it gone (a collection deleted it between
   * the two requests) writes it again.
   */
  async putOrTouch(key: string, body: Uint8Array, signal?: AbortSignal, touchFirst = false): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (!touchFirst || attempt > 1) {
        if (await this.putIfAbsent(key, body, signal)) return;
      }
      if (await this.touch(key, signal)) return;
      if (attempt >= this.retry.maxAttempts)
        throw this.wrap(new Error("deleted again after every write"), `PUT ${key}`, signal);
    }
  }

  /** Deletes keys, 1 DeleteObjects request per 1 000 (S3's limit); an error for any key fails the call. */
  async deleteKeys(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      throwIfAborted(signal);
      const batch = keys.slice(i, i + DELETE_BATCH);
      let errors;
      try {
        const res = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.location.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
          { abortSignal: signal },
        );
        errors = res.Errors ?? [];
      } catch (e) {
        throw this.wrap(e, `DELETE ${batch.length} objects (${batch[0]} …)`, signal);
      }
      if (errors.length > 0) {
        const first = errors[0];
        throw this.wrap(
          new Error(
            `${errors.length} of ${batch.length} not deleted: ${first.Key}: ${first.Code} ${first.Message ?? ""}`,
          ),
          "DELETE",
          signal,
        );
      }
    }
  }

  /**
   * The server's clock (ms since the epoch), from the Date header of 1
   * HeadBucket: the clock LastModified is measured by. The header has whole
   * seconds; the last millisecond of that second is taken (see usedAtOf).
   */
  async serverNow(signal?: AbortSignal): Promise<number> {
    let date: string | undefined;
    const command = new HeadBucketCommand({ Bucket: this.location.bucket });
    command.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        date = (result.response as { headers?: Record<string, string> }).headers?.date;
        return result;
      },
      { step: "deserialize", name: "castoreResponseDate" },
    );
    try {
      await this.client.send(command, { abortSignal: signal });
    } catch (e) {
      throw this.wrap(e, `HEAD bucket ${this.location.bucket}`, signal);
    }
    const ms = date === undefined ? NaN : Date.parse(date);
    if (!Number.isFinite(ms))
      throw this.wrap(new Error(`no usable Date header (${String(date)})`), "reading the server's clock", signal);
    return ms + 999;
  }

  async close(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
  }
}

/** Keys per DeleteObjects request: S3's maximum. */
export const DELETE_BATCH = 1000;

export interface ListedObject {
  key: string;
  size: number;
  lastModified: Date;
}

/**
 * The usedAt (spec §10) of an object last modified at `lastModified`: that
 * time as the server gives it (whole seconds on S3 and s3rver, milliseconds
 * on MinIO). Paired with serverNow, which reads the server's clock as the
 * last millisecond of its current second: a collection takes the whole
 * second it starts in as past, so with `graceMs: 0` everything written
 * before it started is old, in that same second too, and the grace period
 * is honoured to within 2 seconds (an object used at least 2 s inside it is
 * always kept).
 */
export function usedAtOf(lastModified: Date): number {
  return lastModified.getTime();
}

/**
 * Runs `fn` over `items`, at most `limit` at a time; results in input order.
 * The calls share one signal, linked to the caller's: that gets one listener
 * for the whole run, however many requests are in flight (the SDK adds one
 * to the signal of each request, and Node warns of a leak past ten on one
 * signal: at the default concurrency of 32, every run over a caller's signal
 * did). The first failure aborts the calls still running (their results
 * would be thrown away) and is reported once they have all ended: no request
 * outlives the run.
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T, signal: AbortSignal) => Promise<R>,
): Promise<R[]> {
  const { controller, dispose } = linkedController(signal);
  const out = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        out[i] = await fn(items[i], controller.signal);
      } catch (e) {
        if (failure) continue; // a call stopped by the first failure's abort
        failure = { error: e };
        controller.abort(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  dispose();
  if (failure) throw failure.error;
  return out;
}
