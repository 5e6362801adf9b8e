/**
 * Test helpers: an S3 test server with one bucket, services on fresh
 * prefixes (optionally through a FaultProxy), corruption injection, and a
 * whole-store check of the invariant through a direct client.
 */
import { randomUUID } from "node:crypto";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { Digest, type Directory, RootToLeavesChecker, decodeStoredDirectory, encodeDirectory } from "@castore-ts/core";
import { type S3TestServer, startS3TestServer } from "@castore-ts/testing";
import { CLOSURE_MAGIC, FRAME_PREFIX_LENGTH, INDEX_HEADER_LENGTH, decodeIndex, encodeIndex } from "./closure-format.js";
import { afterAll, beforeAll } from "vitest";
import { RequestCounter } from "./request-counter.js";
import { type S3DirectoryServiceOptions, S3DirectoryService } from "./s3-service.js";
import { S3BlobStore } from "./s3-blob-store.js";
import { type S3ConnectionOptions, S3Objects } from "./s3-objects.js";

/**
 * One S3 server and bucket for the calling test file: started before its
 * tests (beforeAll) and stopped after them (afterAll). The handle is returned
 * at once, for module scope; use it inside tests and hooks only.
 */
export function s3TestStoresForFile(): S3TestStores {
  const stores = new S3TestStores();
  beforeAll(() => stores.start(), 180_000);
  afterAll(() => stores.stop(), 180_000); // removing a container is slow on a loaded machine
  return stores;
}

export class S3TestStores {
  private running?: { server: S3TestServer; bucket: string; admin: S3Client };

  async start(): Promise<void> {
    const server = await startS3TestServer();
    const bucket = await server.createBucket();
    this.running = { server, bucket, admin: new S3Client(server.clientConfig()) };
  }

  private get started(): { server: S3TestServer; bucket: string; admin: S3Client } {
    if (!this.running) throw new Error("S3TestStores used before start() (or after stop())");
    return this.running;
  }

  get server(): S3TestServer {
    return this.started.server;
  }

  get bucket(): string {
    return this.started.bucket;
  }

  /** A direct client, for raw object access behind the services' backs. */
  get admin(): S3Client {
    return this.started.admin;
  }

  /** A service on a fresh prefix, talking to `endpoint` (default: the server itself), with a request counter. */
  open(opts: Partial<S3DirectoryServiceOptions> & { endpoint?: string } = {}): {
    service: S3DirectoryService;
    counter: RequestCounter;
    prefix: string;
  } {
    const prefix = opts.prefix ?? `t-${randomUUID()}/`;
    const { endpoint, ...rest } = opts;
    const service = new S3DirectoryService({
      bucket: this.bucket,
      prefix,
      ...rest,
      clientConfig: { ...this.server.clientConfig(), ...(endpoint ? { endpoint } : {}), ...rest.clientConfig },
    });
    return { service, counter: RequestCounter.attach(service.client), prefix };
  }

  /** A blob store on a fresh prefix (or `opts.prefix`), talking to `endpoint` (default: the server itself), with a request counter. */
  openBlobStore(opts: Partial<S3ConnectionOptions> & { endpoint?: string; listPageKeys?: number } = {}): {
    store: S3BlobStore;
    counter: RequestCounter;
    prefix: string;
  } {
    const prefix = opts.prefix ?? `t-${randomUUID()}/`;
    const { endpoint, listPageKeys, ...rest } = opts;
    const store = new S3BlobStore(
      {
        bucket: this.bucket,
        prefix,
        ...rest,
        clientConfig: { ...this.server.clientConfig(), ...(endpoint ? { endpoint } : {}), ...rest.clientConfig },
      },
      { listPageKeys },
    );
    return { store, counter: RequestCounter.attach(store.objects.client), prefix };
  }

  /** The bare object layer on `prefix` (refs, garbage collection), with a request counter. */
  openObjects(
    prefix: string,
    opts: Partial<S3ConnectionOptions> = {},
  ): { objects: S3Objects; counter: RequestCounter } {
    const objects = new S3Objects({
      bucket: this.bucket,
      prefix,
      ...opts,
      clientConfig: { ...this.server.clientConfig(), ...opts.clientConfig },
    });
    return { objects, counter: RequestCounter.attach(objects.client) };
  }

  async stop(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    if (!running) return; // start() failed: nothing to stop
    running.admin.destroy();
    await running.server.stop();
  }

  // ---- raw object access ----

  async getRaw(key: string): Promise<Uint8Array | undefined> {
    try {
      const res = await this.admin.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return await res.Body!.transformToByteArray();
    } catch (e) {
      if ((e as { name?: string }).name === "NoSuchKey") return undefined;
      throw e;
    }
  }

  async putRaw(key: string, body: Uint8Array): Promise<void> {
    await this.admin.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body }));
  }

  async deleteRaw(key: string): Promise<void> {
    await this.admin.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.admin.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch {
      return false;
    }
  }

  async listKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.admin.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of res.Contents ?? []) keys.push(o.Key!);
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return keys;
  }

  /**
   * Stores `bytes` as the directory `digest` behind the service's back,
   * everywhere it is stored: its index object's bytes and its frame in every
   * closure object (the other index objects pointing into a rewritten closure
   * are moved to their frames' new offsets). A digest stored nowhere gets an
   * index object of its own, as a standalone directory.
   */
  async corrupt(prefix: string, digest: Digest, bytes: Uint8Array): Promise<void> {
    const indexKeys = await this.listKeys(`${prefix}dirs/`);
    const indexes = new Map<string, ReturnType<typeof decodeIndex>>();
    for (const key of indexKeys) {
      const d = Digest.parse(key.slice(-64));
      indexes.set(d.hex, decodeIndex(d, (await this.getRaw(key))!));
    }
    for (const key of await this.listKeys(`${prefix}closures/`)) {
      const body = Buffer.from((await this.getRaw(key))!);
      const frames: { offset: number; bytes: Buffer }[] = [];
      for (let at = CLOSURE_MAGIC.length; at < body.length;) {
        const len = body.readUInt32BE(at);
        frames.push({ offset: at, bytes: body.subarray(at + FRAME_PREFIX_LENGTH, at + FRAME_PREFIX_LENGTH + len) });
        at += FRAME_PREFIX_LENGTH + len;
      }
      if (!frames.some((f) => Digest.of(f.bytes).equals(digest))) continue;
      const newOffset = new Map<number, number>(); // old frame offset → new
      const newEnd = new Map<number, number>(); // old frame end → new
      const parts: Buffer[] = [CLOSURE_MAGIC];
      let at = CLOSURE_MAGIC.length;
      for (const f of frames) {
        const replaced = Digest.of(f.bytes).equals(digest) ? Buffer.from(bytes) : f.bytes;
        const prefixBytes = Buffer.alloc(FRAME_PREFIX_LENGTH);
        prefixBytes.writeUInt32BE(replaced.length);
        parts.push(prefixBytes, replaced);
        newOffset.set(f.offset, at);
        at += FRAME_PREFIX_LENGTH + replaced.length;
        newEnd.set(f.offset + FRAME_PREFIX_LENGTH + f.bytes.length, at);
      }
      await this.putRaw(key, Buffer.concat(parts));
      const root = key.slice(-64);
      for (const [hex, rec] of indexes) {
        if (rec.closure?.hex !== root) continue;
        rec.placement = { offset: newOffset.get(rec.placement.offset)!, end: newEnd.get(rec.placement.end)! };
        // The corrupted directory's own index gets its new bytes with its new span: a span that shrank
        // would not fit the old bytes, and the index would be unreadable instead of corrupt.
        if (hex === digest.hex) rec.bytes = bytes;
        await this.putRaw(`${prefix}dirs/${hex}`, encodeIndex(rec));
      }
    }
    // Its own index object (re-read: its placement may have moved above), or a new standalone one.
    const raw = await this.getRaw(`${prefix}dirs/${digest.hex}`);
    const current = raw ? decodeIndex(digest, raw) : { placement: { offset: 0, end: 0 } };
    await this.putRaw(`${prefix}dirs/${digest.hex}`, encodeIndex({ ...current, bytes }));
  }

  /**
   * The invariant, checked through a direct client: every directory with an
   * index object is intact, every directory it refers to has an index object
   * too, and its whole closure streams from the closure object. Returns the
   * digests checked.
   */
  async checkInvariant(prefix: string, service: S3DirectoryService): Promise<{ visible: number; walked: number }> {
    const keys = await this.listKeys(`${prefix}dirs/`);
    const visible = new Set(keys.map((k) => k.slice(-64)));
    let walked = 0;
    for (const hex of visible) {
      const digest = Digest.parse(hex);
      const raw = (await this.getRaw(`${prefix}dirs/${hex}`))!;
      const rec = decodeIndex(digest, raw);
      const directory = decodeStoredDirectory(digest, rec.bytes);
      for (const child of directory.directories) {
        const childHex = Buffer.from(child.digest).toString("hex");
        if (!visible.has(childHex)) throw new Error(`${hex} is visible but its child ${childHex} has no index object`);
      }
      const checker = new RootToLeavesChecker(digest);
      for await (const d of service.getRecursive(digest)) {
        checker.accept(d);
        walked++;
      }
      checker.finish();
    }
    return { visible: visible.size, walked };
  }
}

/** getRecursive into an array, checking root-to-leaves order. */
export async function collect(service: S3DirectoryService, root: Digest, signal?: AbortSignal): Promise<Directory[]> {
  const out: Directory[] = [];
  const checker = new RootToLeavesChecker(root);
  for await (const d of service.getRecursive(root, { signal })) {
    checker.accept(d);
    out.push(d);
  }
  checker.finish();
  return out;
}

/** Uploads directories (leaves to root) through one putter. */
export async function upload(service: S3DirectoryService, directories: Directory[]): Promise<Digest> {
  const putter = service.putMultipleStart();
  for (const d of directories) await putter.put(d);
  return putter.close();
}

export const hexOf = (d: Directory) => Digest.of(encodeDirectory(d)).hex;
export { INDEX_HEADER_LENGTH };
