/**
 * CacheDirectoryService (spec §6, `cache://?near=URL&far=URL`): a read-through
 * cache. Reads try `near`; on a miss the closure streams from `far` to the
 * caller (checked root to leaves on the way) and is stored in `near` as one
 * upload once it was read whole (read-through.ts). Writes go to `far`, the
 * store of record; `near` fills on the next read.
 */
import type { Digest } from "./digest.js";
import { InvalidUrlError } from "./errors.js";
import type { Directory } from "./model.js";
import { readThrough } from "./read-through.js";
import { openDirectoryService, redactUrl, registerDirectoryServiceScheme } from "./registry.js";
import { readStoreUrl } from "./store-url.js";
import {
  type CallOptions,
  type DirectoryPutter,
  type DirectoryService,
  hasDirectories,
  type PutMultipleOptions,
  supportsPartialUploads,
} from "./service.js";
import type { SizeCheck } from "./size-check.js";

export class CacheDirectoryService implements DirectoryService {
  constructor(
    readonly near: DirectoryService,
    readonly far: DirectoryService,
    /** How the declared sizes of a closure copied from far are checked (spec §1.1); default "exact". */
    private readonly opts: { sizeCheck?: SizeCheck } = {},
  ) {}

  /** far's closure of `root`, filling near once it was read whole (read-through.ts). */
  private readThrough(root: Digest, opts?: CallOptions): AsyncGenerator<Directory, void, undefined> {
    return readThrough(this.far, this.near, root, { ...opts, sizeCheck: this.opts.sizeCheck });
  }

  async get(digest: Digest, opts?: CallOptions): Promise<Directory | undefined> {
    const hit = await this.near.get(digest, opts);
    if (hit) return hit;
    // The whole closure is read, so that near gets it (near never holds a directory without its closure).
    let root: Directory | undefined;
    for await (const directory of this.readThrough(digest, opts)) root ??= directory;
    return root;
  }

  async *getRecursive(root: Digest, opts?: CallOptions): AsyncIterable<Directory> {
    if (await this.near.get(root, opts)) yield* this.near.getRecursive(root, opts);
    else yield* this.readThrough(root, opts);
  }

  put(directory: Directory, opts?: CallOptions): Promise<Digest> {
    return this.far.put(directory, opts);
  }

  putMultipleStart(opts?: PutMultipleOptions): DirectoryPutter {
    return this.far.putMultipleStart(opts);
  }

  /** Uploads go to far, so far's answer: what an upload may leave out, and whether it may be partial. */
  has(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]> {
    return hasDirectories(this.far, digests, opts);
  }

  partialUploads(opts?: CallOptions): Promise<boolean> {
    return supportsPartialUploads(this.far, opts);
  }

  async close(): Promise<void> {
    await Promise.all([this.near.close(), this.far.close()]);
  }
}

const CACHE_URL_EXAMPLE = "cache://?near=URL&far=URL (URLs percent-encoded)";

function invalidCacheUrl(text: string, why: string): InvalidUrlError {
  return new InvalidUrlError(
    `invalid cache store URL ${JSON.stringify(redactUrl(text))}: ${why}; expected ${CACHE_URL_EXAMPLE}`,
  );
}

/** The near and far store URLs of a cache:// URL; anything else in it is an error naming it. (Shared with cache-blobs.ts.) */
export function parseCacheUrl(input: URL): { near: string; far: string } {
  const { url, text } = readStoreUrl(input, "cache:", invalidCacheUrl);
  const stores: { near?: string; far?: string } = {};
  for (const [name, value] of url.searchParams) {
    if (name !== "near" && name !== "far") throw invalidCacheUrl(text, `unknown option "${name}" (known: near, far)`);
    if (stores[name] !== undefined) throw invalidCacheUrl(text, `option "${name}" given twice`);
    stores[name] = value;
  }
  if (!stores.near || !stores.far) {
    throw new InvalidUrlError(
      "cache:// needs both near= and far= store URLs, percent-encoded, e.g. cache://?near=memory%3A%2F%2F&far=lmdb%3A%2F%2F.%2Fdata",
    );
  }
  return { near: stores.near, far: stores.far };
}

registerDirectoryServiceScheme("cache", CACHE_URL_EXAMPLE, async (url, opts) => {
  const { near, far } = parseCacheUrl(url);
  const nearService = await openDirectoryService(near, opts);
  try {
    return new CacheDirectoryService(nearService, await openDirectoryService(far, opts), opts);
  } catch (e) {
    await nearService.close();
    throw e;
  }
});
