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
import type { Readable } from "node:stream";
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import {
  type CallOptions,
  type ClosureEntry,
  ClosurePutter,
  CorruptionError,
  Digest,
  type Directory,
  type DirectoryPutter,
  expandPartialClosure,
  type DirectoryService,
  RootToLeavesChecker,
  type SizeCheck,
  type ValidatedClosure,
  decodeDirectory,
  decodeStoredDirectory,
  type ListDigestsOptions,
  repairEntries,
  reportInvalidKey,
  requireDigest,
  throwIfAborted,
  type PutMultipleOptions,
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
import { isNotFound, isPreconditionFailed, s3Status, sleep } from "./s3-errors.js";
import { type S3ConnectionOptions, S3Objects, connectionOptionsFromUrl, linkedController } from "./s3-objects.js";
import type { S3Location } from "./s3-url.js";

export { DEFAULT_CONCURRENCY, DEFAULT_SOCKET_TIMEOUT_MS } from "./s3-objects.js";

export interface S3DirectoryServiceOptions extends S3ConnectionOptions {
  sizeCheck?: SizeCheck;
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
  /** The bucket, prefix and client (shared object operations with the blob store). */
  readonly objects: S3Objects;
  private readonly sizeCheck: SizeCheck | undefined;

  constructor(opts: S3DirectoryServiceOptions) {
    this.objects = new S3Objects(opts);
    this.sizeCheck = opts.sizeCheck;
  }

  get client(): S3Client {
    return this.objects.client;
  }

  get location(): S3Location {
    return this.objects.location;
  }

  /** Names the store in errors: bucket, prefix and endpoint, never credentials. */
  get backend(): string {
    return this.objects.backend;
  }

  /** Opens the store an `s3:` URL names (see parseS3Url for the forms and options). */
  static fromUrl(url: URL | string, opts: { sizeCheck?: SizeCheck } = {}): S3DirectoryService {
    return new S3DirectoryService({ ...connectionOptionsFromUrl(url), sizeCheck: opts.sizeCheck });
  }

  /** Key of the closure object of `root`. */
  closureKey(root: Digest): string {
    return `${this.location.prefix}closures/${root.hex}`;
  }

  /** Key of the index object of `digest`. */
  indexKey(digest: Digest): string {
    return `${this.location.prefix}dirs/${digest.hex}`;
  }

  // ---- reads ----

  private async getIndex(digest: Digest, signal?: AbortSignal): Promise<IndexRecord | undefined> {
    const data = await this.objects.getBytes(this.indexKey(digest), signal);
    return data === undefined ? undefined : decodeIndex(digest, data);
  }

  async get(digest: Digest, opts?: CallOptions): Promise<Directory | undefined> {
    requireDigest(digest, "get(): digest");
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
          if (isPreconditionFailed(e) && etag && attempt < this.objects.retry.maxAttempts) {
            // Rewritten between two ranged reads (by an upload of the same closure: same bytes). Go on without the ETag.
            etag = undefined;
            attempt++;
            continue;
          }
          throw this.objects.wrap(e, `GET ${key} bytes ${pos}-${end - 1}`, signal);
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
          if (controller.signal.aborted) throw this.objects.wrap(e, `GET ${key}`, signal);
          if (attempt >= this.objects.retry.maxAttempts)
            throw this.objects.wrap(e, `GET ${key} (body broke off at byte ${pos})`, signal);
          await sleep(this.objects.backoff(attempt), controller.signal);
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
    requireDigest(root, "getRecursive(): root");
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

  /**
   * A partial upload (spec §3.6) is made whole before the commit: the stored
   * children's closures are read back (two GETs each) and laid out in this
   * upload's closure object, which must hold the root's whole closure.
   */
  putMultipleStart(opts?: PutMultipleOptions): DirectoryPutter {
    return new ClosurePutter(
      {
        commit: async (closure, signal) =>
          this.commit(await expandPartialClosure(this, closure, { sizeCheck: this.sizeCheck, signal }), signal),
      },
      {
        sizeCheck: this.sizeCheck,
        signal: opts?.signal,
        partial: opts?.partial,
      },
    );
  }

  async partialUploads(): Promise<boolean> {
    return true;
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
    // Whether the closure object was stored already: its index objects most likely are too, so each is touched
    // first (1 COPY) and PUT only when missing, instead of PUT (412) then touched.
    let closureWasStored = false;
    if (rootEntry.directory.directories.length > 0) {
      const layout = layoutClosure(entries, root);
      placements = layout.placements;
      const key = this.closureKey(root);
      closureWasStored = !(await this.objects.putIfAbsent(key, layout.body, signal));
      // Touch rule (a), spec §10.2: a stored closure object is marked used before any index object points into it.
      if (closureWasStored) await this.objects.putOrTouch(key, layout.body, signal, true);
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
        while (!failure && inFlight < this.objects.concurrency && ready.size > 0) {
          const hex = ready.pop();
          const entry = byHex.get(hex)!;
          inFlight++;
          // Touch rule (a): every entry of the upload ends up stored and used now, the ones already there too
          // (children before parents, as written); a collection deciding meanwhile spares them or they are written again.
          this.objects
            .putOrTouch(this.indexKey(entry.digest), indexBody(entry), controller.signal, closureWasStored)
            .then(
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

  /** Every stored directory: the keys under `dirs/` (one ListObjectsV2 request per 1 000). */
  async *listDigests(opts?: ListDigestsOptions): AsyncGenerator<Digest, void, undefined> {
    const prefix = `${this.location.prefix}dirs/`;
    for await (const key of this.objects.listKeys(prefix, opts?.signal)) {
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
    for await (const key of this.objects.listKeys(closuresPrefix, signal)) {
      const hex = key.slice(closuresPrefix.length);
      if (!/^[0-9a-f]{64}$/.test(hex)) continue;
      const body = await this.objects.getBytes(key, signal);
      if (body === undefined) continue; // deleted meanwhile
      const root = Digest.parse(hex);
      const rebuilt = rebuiltClosure(root, body, repairs);
      closureLengths.set(hex, (rebuilt?.body ?? body).length);
      if (!rebuilt) continue;
      await this.objects.putReplacing(key, rebuilt.body, signal);
      // Frames may have changed length: the index objects pointing into this object move with them.
      for (const [member, placement] of rebuilt.placements) {
        const digest = Digest.parse(member);
        const stored = await this.objects.getBytes(this.indexKey(digest), signal);
        const moved = stored && movedIndex(digest, stored, root, placement, repairs.get(member));
        if (moved) await this.objects.putReplacing(this.indexKey(digest), moved, signal);
      }
    }
    const replaced: Digest[] = [];
    for (const entry of entries) {
      const key = this.indexKey(entry.digest);
      const stored = await this.objects.getBytes(key, signal);
      if (stored === undefined) continue;
      const index = repairedIndex(entry, stored, closureLengths.get(entry.digest.hex));
      if (!index) continue;
      await this.objects.putReplacing(key, index, signal);
      replaced.push(entry.digest);
    }
    return replaced;
  }

  async close(): Promise<void> {
    await this.objects.close();
  }
}
