/**
 * S3DirectoryService: castore directories in an S3 bucket (or any
 * S3-compatible server), designed for few requests. See README.md for the
 * object layout, the request-count formulas and why no directory is ever
 * visible without its closure. In short:
 *
 * - upload of N directories: `closures/<root>` (all N, framed, root to leaves)
 *   then `dirs/<d>` for every d, children before parents: N + 1 PUTs
 *   (1 when the root has no child directories);
 * - get(d): 1 GET of `dirs/<d>`, which carries d's bytes;
 * - getRecursive(d): that GET, then 1 ranged, streamed GET of d's span in the
 *   closure object (none when d has no child directories).
 *
 * Every read is re-hashed and re-validated; the frames of a closure are
 * checked root to leaves as they arrive.
 */
import { setMaxListeners } from "node:events";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Readable } from "node:stream";
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import {
  AbortError,
  BackendError,
  type CallOptions,
  type ClosureEntry,
  ClosurePutter,
  CorruptionError,
  Digest,
  type Directory,
  type DirectoryPutter,
  type DirectoryService,
  RootToLeavesChecker,
  type SizeCheck,
  type ValidatedClosure,
  decodeDirectory,
  decodeStoredDirectory,
  isCastoreError,
  type ListDigestsOptions,
  repairEntries,
  reportInvalidKey,
  throwIfAborted,
} from "@castore-ts/core";
import {
  FRAME_PREFIX_LENGTH,
  type IndexRecord,
  decodeIndex,
  encodeIndex,
  layoutClosure,
  readFrames,
} from "./closure-format.js";
import { movedIndex, rebuiltClosure, repairedIndex } from "./s3-repair.js";
import { BackoffRetryStrategy, type RetryOptions, resolveRetryOptions } from "./retry.js";
import { type ConditionalWrites, type S3Location, normalizePrefix, parseS3Url } from "./s3-url.js";

export interface S3DirectoryServiceOptions {
  bucket: string;
  /** Key prefix under which the store lives ("" or e.g. "castore/"; a trailing slash is added). */
  prefix?: string;
  /** A ready client (not destroyed by close()); otherwise one is built from `clientConfig`. */
  client?: S3Client;
  /** Settings for the client this service builds (endpoint, region, credentials, forcePathStyle, …). */
  clientConfig?: S3ClientConfig;
  /** Most requests one upload keeps in flight. Default 32. */
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
  sizeCheck?: SizeCheck;
}

export const DEFAULT_CONCURRENCY = 32;
export const DEFAULT_SOCKET_TIMEOUT_MS = 60_000;

/** The S3 error name or HTTP status of an SDK error. */
function s3Status(e: unknown): { name: string; status?: number } {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return { name: err?.name ?? "", status: err?.$metadata?.httpStatusCode };
}

function isNotFound(e: unknown): boolean {
  const { name, status } = s3Status(e);
  return name === "NoSuchKey" || name === "NotFound" || (status === 404 && name !== "NoSuchBucket");
}

function isPreconditionFailed(e: unknown): boolean {
  const { name, status } = s3Status(e);
  return name === "PreconditionFailed" || status === 412;
}

function isSdkAbort(e: unknown): boolean {
  return (e as { name?: string } | undefined)?.name === "AbortError";
}

const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ETIMEDOUT",
]);

function isUnavailable(e: unknown, depth = 0): boolean {
  const err = e as { code?: string; name?: string; cause?: unknown } | undefined;
  if (!err) return false;
  if ((err.code && UNAVAILABLE_CODES.has(err.code)) || err.name === "TimeoutError") return true;
  return depth < 5 && err.cause !== undefined && isUnavailable(err.cause, depth + 1);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError("operation aborted", { cause: signal.reason }));
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortError("operation aborted", { cause: signal!.reason }));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** An AbortController that also fires when `parent` does; `dispose` unhooks it. */
function linkedController(parent?: AbortSignal): { controller: AbortController; dispose(): void } {
  const controller = new AbortController();
  // One listener per request in flight: an upload keeps up to `concurrency` of them.
  setMaxListeners(0, controller.signal);
  if (!parent) return { controller, dispose: () => {} };
  if (parent.aborted) controller.abort(parent.reason);
  const onAbort = () => controller.abort(parent.reason);
  parent.addEventListener("abort", onAbort, { once: true });
  return { controller, dispose: () => parent.removeEventListener("abort", onAbort) };
}

/** A max-heap of hex digests by priority: the ready index objects of an upload. */
class ReadyQueue {
  private readonly heap: string[] = [];
  constructor(private readonly priority: (hex: string) => number) {}

  get size(): number {
    return this.heap.length;
  }

  push(hex: string): void {
    const h = this.heap;
    h.push(hex);
    for (let i = h.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (this.priority(h[parent]) >= this.priority(h[i])) break;
      [h[parent], h[i]] = [h[i], h[parent]];
      i = parent;
    }
  }

  pop(): string {
    const h = this.heap;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.priority(h[l]) > this.priority(h[m])) m = l;
        if (r < h.length && this.priority(h[r]) > this.priority(h[m])) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}

export class S3DirectoryService implements DirectoryService {
  readonly client: S3Client;
  readonly location: S3Location;
  /** Names the store in errors: bucket, prefix and endpoint, never credentials. */
  readonly backend: string;
  private readonly ownsClient: boolean;
  private readonly concurrency: number;
  private readonly retry: Required<RetryOptions>;
  private readonly sizeCheck: SizeCheck | undefined;
  /** Whether PUTs send If-None-Match: * (turned off in "auto" mode when the server answers 501). */
  private conditional: boolean;
  private readonly conditionalMode: ConditionalWrites;

  constructor(opts: S3DirectoryServiceOptions) {
    this.location = { bucket: opts.bucket, prefix: normalizePrefix(opts.prefix ?? "") };
    this.concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new RangeError(`concurrency must be a positive integer, got ${opts.concurrency}`);
    }
    this.retry = resolveRetryOptions(opts.retry);
    this.sizeCheck = opts.sizeCheck;
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

  /** Opens the store an `s3:` URL names (see parseS3Url for the forms and options). */
  static fromUrl(url: URL | string, opts: { sizeCheck?: SizeCheck } = {}): S3DirectoryService {
    const u = parseS3Url(url);
    const region =
      u.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? (u.endpoint ? "us-east-1" : undefined);
    return new S3DirectoryService({
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
      sizeCheck: opts.sizeCheck,
    });
  }

  /** Key of the closure object of `root`. */
  closureKey(root: Digest): string {
    return `${this.location.prefix}closures/${root.hex}`;
  }

  /** Key of the index object of `digest`. */
  indexKey(digest: Digest): string {
    return `${this.location.prefix}dirs/${digest.hex}`;
  }

  /** Engine failures become BackendError naming the store; castore's own errors pass through. */
  private wrap(error: unknown, what: string, signal?: AbortSignal): unknown {
    if (isCastoreError(error)) return error;
    if (isSdkAbort(error) || signal?.aborted)
      return new AbortError(`${what}: aborted`, { cause: signal?.reason ?? error });
    const { name, status } = s3Status(error);
    const message = error instanceof Error && error.message ? error.message : String(error);
    const detail = [name && name !== "Error" && !message.includes(name) ? name : "", status ? `HTTP ${status}` : ""]
      .filter(Boolean)
      .join(", ");
    return new BackendError(this.backend, `${what}: ${message}${detail ? ` (${detail})` : ""}`, {
      cause: error,
      unavailable: isUnavailable(error),
    });
  }

  // ---- reads ----

  /** A whole (small) object, or undefined when absent; an interrupted body is fetched again. */
  private async getObjectBytes(key: string, signal?: AbortSignal): Promise<Uint8Array | undefined> {
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

  private backoff(attempt: number): number {
    return Math.floor(Math.random() * Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1)));
  }

  private async getIndex(digest: Digest, signal?: AbortSignal): Promise<IndexRecord | undefined> {
    const data = await this.getObjectBytes(this.indexKey(digest), signal);
    return data === undefined ? undefined : decodeIndex(digest, data);
  }

  async get(digest: Digest, opts?: CallOptions): Promise<Directory | undefined> {
    const record = await this.getIndex(digest, opts?.signal);
    return record === undefined ? undefined : decodeStoredDirectory(digest, record.bytes);
  }

  /**
   * The bytes [start, end) of an object, streamed chunk by chunk. A body that
   * breaks off is resumed from where it stopped (same ETag), up to the retry
   * bound. Stopping the iteration aborts the request. A missing object or a
   * range past its end is a CorruptionError (an index object pointed here); an
   * object shorter than `end` just ends early (the frame reader says so).
   */
  private async *readRange(
    key: string,
    start: number,
    end: number,
    signal: AbortSignal | undefined,
    what: () => string,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const { controller, dispose } = linkedController(signal);
    let pos = start;
    let etag: string | undefined;
    let attempt = 1;
    try {
      while (pos < end) {
        let res;
        try {
          res = await this.client.send(
            new GetObjectCommand({
              Bucket: this.location.bucket,
              Key: key,
              Range: `bytes=${pos}-${end - 1}`,
              ...(etag ? { IfMatch: etag } : {}),
            }),
            { abortSignal: controller.signal },
          );
        } catch (e) {
          if (isNotFound(e)) throw new CorruptionError(`${what()}: closure object ${key} is missing`, { cause: e });
          const { name, status } = s3Status(e);
          if (name === "InvalidRange" || status === 416) return; // the object ends before `pos`
          if (isPreconditionFailed(e) && etag && attempt < this.retry.maxAttempts) {
            // Rewritten between two ranged reads (by an upload of the same closure: same bytes). Go on without the ETag.
            etag = undefined;
            attempt++;
            continue;
          }
          throw this.wrap(e, `GET ${key} bytes ${pos}-${end - 1}`, signal);
        }
        etag ??= res.ETag;
        const body = res.Body as Readable;
        // A server that ignores Range sends the whole object: skip to `pos`.
        let skip = res.ContentRange ? 0 : pos;
        try {
          for await (const raw of body) {
            let chunk = raw as Uint8Array;
            if (skip > 0) {
              const n = Math.min(skip, chunk.length);
              skip -= n;
              chunk = chunk.subarray(n);
            }
            if (chunk.length === 0) continue;
            if (pos + chunk.length > end) chunk = chunk.subarray(0, end - pos);
            pos += chunk.length;
            attempt = 1; // progress: the retry bound counts consecutive failures
            yield chunk;
            if (pos >= end) break;
          }
          if (pos < end) return; // the body ended cleanly: the object is shorter than the span (the frame reader says so)
        } catch (e) {
          if (controller.signal.aborted) throw this.wrap(e, `GET ${key}`, signal);
          if (attempt >= this.retry.maxAttempts)
            throw this.wrap(e, `GET ${key} (body broke off at byte ${pos})`, signal);
          await sleep(this.backoff(attempt), controller.signal);
          attempt++;
        } finally {
          body.destroy();
        }
      }
    } finally {
      // Stops a request still in flight when the consumer stops early.
      controller.abort();
      dispose();
    }
  }

  getRecursive(root: Digest, opts?: CallOptions): AsyncIterable<Directory> {
    return this.walk(root, opts?.signal);
  }

  private async *walk(root: Digest, signal?: AbortSignal): AsyncGenerator<Directory, void, undefined> {
    throwIfAborted(signal);
    const record = await this.getIndex(root, signal);
    if (record === undefined) return;
    const rootDirectory = decodeStoredDirectory(root, record.bytes);
    const checker = new RootToLeavesChecker(root, { sizeCheck: this.sizeCheck });
    checker.accept(rootDirectory, record.bytes);
    // `wanted` mirrors the checker's expected set: frames of other directories in the span are skipped.
    const wanted = new Set<string>();
    const received = new Set<string>([root.hex]);
    const expectChildren = (d: Directory) => {
      for (const child of d.directories) {
        const hex = Buffer.from(child.digest).toString("hex");
        if (!received.has(hex)) wanted.add(hex);
      }
    };
    expectChildren(rootDirectory);
    yield rootDirectory;
    if (wanted.size === 0) return;
    if (!record.closure) {
      throw new CorruptionError(
        `index object of directory ${root} names no closure object, but ${root} has child directories`,
      );
    }

    const closure = record.closure;
    const key = this.closureKey(closure);
    // The closure's own root: every frame of the object belongs to the walk. Otherwise frames of other directories are skipped.
    const ownClosure = closure.equals(root);
    const start = record.placement.offset + FRAME_PREFIX_LENGTH + record.bytes.length;
    const end = record.placement.end;
    const what = () => `closure object ${key} (sub-closure of ${root})`;
    for await (const frame of readFrames(this.readRange(key, start, end, signal, what), end - start, what)) {
      const digest = Digest.of(frame);
      if (!wanted.has(digest.hex)) {
        if (ownClosure) {
          throw new CorruptionError(`${what()}: holds directory ${digest}, which no directory before it refers to`);
        }
        continue;
      }
      let directory: Directory;
      try {
        directory = decodeDirectory(frame);
      } catch (e) {
        throw new CorruptionError(`directory ${digest} in ${what()} is corrupt: ${(e as Error).message}`);
      }
      checker.accept(directory, frame);
      wanted.delete(digest.hex);
      received.add(digest.hex);
      expectChildren(directory);
      yield directory;
      throwIfAborted(signal);
    }
    checker.finish();
  }

  // ---- writes ----

  put(directory: Directory, opts?: CallOptions): Promise<Digest> {
    const putter = this.putMultipleStart(opts);
    return putter.put(directory).then(() => putter.close());
  }

  putMultipleStart(opts?: CallOptions): DirectoryPutter {
    return new ClosurePutter(
      { commit: (closure, signal) => this.commit(closure, signal) },
      {
        sizeCheck: this.sizeCheck,
        signal: opts?.signal,
      },
    );
  }

  /**
   * PUTs an object, with If-None-Match: * when enabled. Returns false when it
   * was already there (412 from a server that honours the condition).
   */
  private async putObject(key: string, body: Uint8Array, signal?: AbortSignal): Promise<boolean> {
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
        const { name, status } = s3Status(e);
        if (conditional && this.conditionalMode === "auto" && (name === "NotImplemented" || status === 501)) {
          this.conditional = false; // the server does not do conditional writes: plain PUTs from now on
          continue;
        }
        throw this.wrap(e, `PUT ${key}`, signal);
      }
    }
  }

  private async exists(key: string, signal?: AbortSignal): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: key }), {
        abortSignal: signal,
      });
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw this.wrap(e, `HEAD ${key}`, signal);
    }
  }

  /**
   * Stores a checked closure. Order is what keeps the invariant:
   * 1. the closure object (when the root has child directories), so every
   *    index object that points into it points at a complete closure;
   * 2. the index objects, each only after those of its children, so a
   *    directory that get() finds has every descendant findable too; the
   *    root's comes last.
   * A failure at any point leaves only directories whose closures are whole.
   */
  private async commit(closure: ValidatedClosure, signal?: AbortSignal): Promise<void> {
    const root = closure.root;
    const entries = closure.entries;
    const rootEntry = entries[entries.length - 1];
    const byHex = new Map<string, ClosureEntry>(entries.map((e) => [e.digest.hex, e]));
    let placements: Map<string, { offset: number; end: number }> | undefined;
    if (rootEntry.directory.directories.length > 0) {
      const layout = layoutClosure(entries, root);
      placements = layout.placements;
      const created = await this.putObject(this.closureKey(root), layout.body, signal);
      // The closure object was there already: if the root's index is too, so is everything below it.
      if (!created && (await this.exists(this.indexKey(root), signal))) return;
    }

    const indexBody = (e: ClosureEntry): Uint8Array =>
      e.directory.directories.length === 0
        ? encodeIndex({ placement: { offset: 0, end: 0 }, bytes: e.bytes })
        : encodeIndex({ closure: root, placement: placements!.get(e.digest.hex)!, bytes: e.bytes });

    // Children before parents: a directory's index is written once all its children's are.
    const childrenLeft = new Map<string, number>();
    const parents = new Map<string, string[]>();
    for (const e of byHex.values()) {
      const children = new Set(e.directory.directories.map((c) => Buffer.from(c.digest).toString("hex")));
      childrenLeft.set(e.digest.hex, children.size);
      for (const c of children) {
        const list = parents.get(c);
        if (list) list.push(e.digest.hex);
        else parents.set(c, [e.digest.hex]);
      }
    }
    // Critical path first: of the ready directories, the one with the longest chain of parents above it.
    // (FIFO order leaves the chains near the root to run nearly one at a time at the end.)
    const depth = new Map<string, number>([[root.hex, 0]]);
    for (let i = entries.length - 1; i >= 0; i--) {
      const hex = entries[i].digest.hex;
      const below = (depth.get(hex) ?? 0) + 1;
      for (const c of entries[i].directory.directories) {
        const childHex = Buffer.from(c.digest).toString("hex");
        if ((depth.get(childHex) ?? -1) < below) depth.set(childHex, below);
      }
    }
    const ready = new ReadyQueue((hex) => depth.get(hex) ?? 0);
    for (const e of byHex.values()) if (childrenLeft.get(e.digest.hex) === 0) ready.push(e.digest.hex);
    await new Promise<void>((resolve, reject) => {
      const { controller, dispose } = linkedController(signal);
      let inFlight = 0;
      let done = 0;
      let failure: { error: unknown } | undefined;
      const settle = () => {
        if (inFlight > 0) return;
        if (failure) {
          dispose();
          reject(failure.error);
        } else if (ready.size === 0) {
          dispose();
          if (done === byHex.size) resolve();
          else reject(new Error(`internal error: only ${done} of ${byHex.size} index objects could be scheduled`));
        }
      };
      const pump = () => {
        while (!failure && inFlight < this.concurrency && ready.size > 0) {
          const hex = ready.pop();
          const entry = byHex.get(hex)!;
          inFlight++;
          this.putObject(this.indexKey(entry.digest), indexBody(entry), controller.signal).then(
            () => {
              inFlight--;
              done++;
              for (const p of parents.get(hex) ?? []) {
                const left = childrenLeft.get(p)! - 1;
                childrenLeft.set(p, left);
                if (left === 0) ready.push(p);
              }
              pump();
              settle();
            },
            (error) => {
              inFlight--;
              if (!failure) {
                // The first failure is the one to report; aborting the rest makes theirs AbortErrors.
                failure = { error };
                controller.abort(error);
              }
              settle();
            },
          );
        }
      };
      pump();
      settle();
    });
  }

  // ---- listing and lifecycle ----

  /** Every key under `prefix` (one ListObjectsV2 request per 1 000). */
  private async *listKeys(prefix: string, signal?: AbortSignal): AsyncGenerator<string, void, undefined> {
    let token: string | undefined;
    do {
      throwIfAborted(signal);
      let res;
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

  /** Every stored directory: the keys under `dirs/` (one ListObjectsV2 request per 1 000). */
  async *listDigests(opts?: ListDigestsOptions): AsyncGenerator<Digest, void, undefined> {
    const prefix = `${this.location.prefix}dirs/`;
    for await (const key of this.listKeys(prefix, opts?.signal)) {
      // castore names index objects by the lowercase hex digest; any other name under dirs/ is not its own.
      const hex = key.slice(prefix.length);
      if (/^[0-9a-f]{64}$/.test(hex)) yield Digest.parse(hex);
      else {
        const reason = "object name under dirs/ is not a digest (64 lowercase hex digits)";
        reportInvalidKey(this.backend, { key, reason }, opts?.onInvalidKey);
      }
    }
  }

  // ---- repair ----

  /**
   * DirectoryService.repair: overwrites the stored bytes of each directory
   * (checked by core's repairEntries first) wherever they are stored. Reads
   * every closure object (a LIST per 1 000, a GET each) and rewrites those
   * that hold a damaged frame of a repaired directory (s3-repair.ts), then
   * each repaired directory's index object. Plain PUTs: a repair replaces
   * what is there. A directory without an index object stays absent.
   */
  async repair(directories: Directory[], opts?: CallOptions): Promise<Digest[]> {
    const signal = opts?.signal;
    const entries = repairEntries(directories);
    if (entries.length === 0) return [];
    const repairs = new Map(entries.map((e) => [e.digest.hex, e]));
    const closureLengths = new Map<string, number>();
    const closuresPrefix = `${this.location.prefix}closures/`;
    for await (const key of this.listKeys(closuresPrefix, signal)) {
      const hex = key.slice(closuresPrefix.length);
      if (!/^[0-9a-f]{64}$/.test(hex)) continue;
      const body = await this.getObjectBytes(key, signal);
      if (body === undefined) continue; // deleted meanwhile
      const root = Digest.parse(hex);
      const rebuilt = rebuiltClosure(root, body, repairs);
      closureLengths.set(hex, (rebuilt?.body ?? body).length);
      if (!rebuilt) continue;
      await this.putObjectReplacing(key, rebuilt.body, signal);
      // Frames may have changed length: the index objects pointing into this object move with them.
      for (const [member, placement] of rebuilt.placements) {
        const digest = Digest.parse(member);
        const stored = await this.getObjectBytes(this.indexKey(digest), signal);
        const moved = stored && movedIndex(digest, stored, root, placement, repairs.get(member));
        if (moved) await this.putObjectReplacing(this.indexKey(digest), moved, signal);
      }
    }
    const replaced: Digest[] = [];
    for (const entry of entries) {
      const key = this.indexKey(entry.digest);
      const stored = await this.getObjectBytes(key, signal);
      if (stored === undefined) continue;
      const index = repairedIndex(entry, stored, closureLengths.get(entry.digest.hex));
      if (!index) continue;
      await this.putObjectReplacing(key, index, signal);
      replaced.push(entry.digest);
    }
    return replaced;
  }

  /** A plain PUT, replacing what is there (repair only: uploads never overwrite). */
  private async putObjectReplacing(key: string, body: Uint8Array, signal?: AbortSignal): Promise<void> {
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

  async close(): Promise<void> {
    if (this.ownsClient) this.client.destroy();
  }
}
