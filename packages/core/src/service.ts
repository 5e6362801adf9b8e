/**
 * The DirectoryService interface (spec §3): what every backend implements and
 * every consumer (server, CLI, conformance suite) programs against.
 */
import type { ClosureEntry } from "./closure.js";
import type { Digest } from "./digest.js";
import type { Directory } from "./model.js";
import type { ListDigestsOptions } from "./stored-keys.js";

export interface CallOptions {
  /** Cancels the call; the backend stops reading or writing and releases what it holds. */
  signal?: AbortSignal;
}

/** Options of one upload. */
export interface PutMultipleOptions extends CallOptions {
  /**
   * A partial upload (spec §3.6): a directory may refer to a child directory
   * the store already holds instead of carrying it in the upload. The store
   * checks, atomically with the commit, that each such child is stored with
   * the declared size, and marks it and its closure used (spec §10.2).
   * Taken only by a service whose `partialUploads()` resolves to true; on any
   * other, such a reference fails the upload with ClosureError, as in a
   * whole-closure upload.
   */
  partial?: boolean;
}

/** A directory read from a store with its canonical bytes and digest (getRecursiveEncoded). */
export interface EncodedDirectory {
  readonly directory: Directory;
  /** encodeDirectory(directory): the bytes read and re-hashed. */
  readonly bytes: Uint8Array;
  /** The digest `bytes` were read under and hashed to. */
  readonly digest: Digest;
}

export interface DirectoryService {
  /** The directory with this digest, re-validated and re-hashed; undefined when absent. Corrupt data throws CorruptionError. */
  get(digest: Digest, opts?: CallOptions): Promise<Directory | undefined>;
  /** Stores one directory that has no child directories (an upload must carry its own closure). */
  put(directory: Directory, opts?: CallOptions): Promise<Digest>;
  /** The root, then every directory reachable from it, root to leaves, each once; empty when the root is absent. */
  getRecursive(root: Digest, opts?: CallOptions): AsyncIterable<Directory>;
  /**
   * Optional: getRecursive with each directory's canonical bytes and digest
   * beside it (exactly `encodeDirectory(directory)`, the bytes that were
   * re-hashed, and the digest they hashed to), same order and same checks:
   * for a server that sends the bytes on as they are instead of encoding
   * every directory again, and for cache://'s fill, which stores them in
   * near without checking them again (read-through.ts). The bytes belong to
   * the caller, like the directory. A wrapper that changes getRecursive
   * must change or drop this one too (a server and the cache prefer it).
   */
  getRecursiveEncoded?(root: Digest, opts?: CallOptions): AsyncIterable<EncodedDirectory>;
  /** Starts an upload of one closure, leaves to root (or, with `partial`, of the part the store lacks). */
  putMultipleStart(opts?: PutMultipleOptions): DirectoryPutter;
  /**
   * Optional: stores the whole closure of `root` that core has checked
   * already, all or nothing, without checking it again. The caller vouches
   * that every entry's bytes are canonical, valid and hash to its digest,
   * and that the entries are exactly the closure of `root`, every declared
   * size accepted; they may come in any order. For copies inside one
   * process of a closure core just checked (cache://'s fill, read-through.ts,
   * which checks far's stream root to leaves), which a putter would check a
   * second time: never for bytes from outside core's checks. Offered by
   * StoreDirectoryService over a store whose commit is one atomic step
   * (DirectoryStore.unorderedClosures).
   */
  putCheckedClosure?(root: Digest, entries: ClosureEntry[], opts?: CallOptions): Promise<void>;
  /**
   * Optional: whether this service takes partial uploads
   * (`putMultipleStart({ partial: true })`). Absent means no; see
   * `supportsPartialUploads`.
   */
  partialUploads?(opts?: CallOptions): Promise<boolean>;
  /** Releases connections and files. */
  close(): Promise<void>;
  /**
   * Optional: every digest the store holds, for `castore verify` of a whole
   * store. Backends that cannot list cheaply leave it out. A stored key that
   * is not a digest is never yielded: it goes to `opts.onInvalidKey` and the
   * listing continues, or, without that callback, the listing ends with
   * CorruptionError naming the key (see stored-keys.ts).
   */
  listDigests?(opts?: ListDigestsOptions): AsyncIterable<Digest>;
  /**
   * Optional: replaces what the store holds under each directory's digest
   * with the directory's canonical bytes, the repair of stored bytes that
   * were damaged (an upload never rewrites a stored digest). Each directory
   * is validated and hashed before anything is written (a ValidationError
   * otherwise, and nothing written); a digest the store does not hold is
   * left absent (never added without its closure). Resolves to the digests
   * whose bytes were replaced. Backends that cannot replace stored bytes
   * leave it out (see docs/writing-a-backend.md).
   */
  repair?(directories: Directory[], opts?: CallOptions): Promise<Digest[]>;
  /**
   * Optional: whether the store holds each of these directories (a stored
   * one has its whole closure, spec §3.1), in as few round trips as the
   * backend allows. Without it, `hasDirectories` asks `get` of each.
   */
  has?(digests: readonly Digest[], opts?: CallOptions): Promise<boolean[]>;
}

/** Whether `service` holds each directory: its `has` where it has one, else a `get` of each (8 at a time). */
export async function hasDirectories(
  service: Pick<DirectoryService, "get" | "has">,
  digests: readonly Digest[],
  opts: CallOptions = {},
): Promise<boolean[]> {
  if (service.has) return service.has(digests, opts);
  const out = new Array<boolean>(digests.length);
  let next = 0;
  const worker = async () => {
    while (next < digests.length) {
      const i = next++;
      out[i] = (await service.get(digests[i], opts)) !== undefined;
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, digests.length) }, worker));
  return out;
}

/** Whether `service` takes partial uploads: its `partialUploads()` where it has one, else no. */
export async function supportsPartialUploads(
  service: Pick<DirectoryService, "partialUploads">,
  opts: CallOptions = {},
): Promise<boolean> {
  return service.partialUploads ? service.partialUploads(opts) : false;
}

/**
 * One upload, leaves to root. Its states: open (put() adds), closing (close()
 * was called and has not settled), then closed, failed or aborted. The rules,
 * the same for every backend (core's ClosurePutter, the gRPC client's putter;
 * the conformance suite checks them):
 * - put() after close() was called, also while close() is still running, is
 *   refused with ClosureError; the upload is what was put before close().
 * - close() a second time, also while the first is still running, is refused
 *   with ClosureError; only the first close() resolves with the root.
 * - abort() while close() runs asks the commit to stop where it can (a local
 *   store's commit; a server cannot be recalled once the end of the upload is
 *   on its way) and waits for close() to settle. If the upload was not
 *   stored, abort() resolves and close() rejects (with AbortError when the
 *   commit was stopped): the root is not stored by this upload (a store that
 *   cannot roll back, like S3, may keep complete subtrees of it). If it was
 *   stored first, abort() rejects with ClosureError saying so, and close()
 *   resolves with the root.
 * - abort() after close() settled, or a second abort(), does nothing.
 */
export interface DirectoryPutter {
  /**
   * Adds a directory; its child directories must have been put earlier in this upload. May report an earlier error.
   *
   * `encoded`, when given, is the caller's promise that it holds exactly
   * `encodeDirectory(directory)` (for example bytes that arrived over the wire
   * and were decoded strictly, so they are canonical): a putter may store and
   * hash them instead of encoding again, or ignore them. A caller that is not
   * sure passes nothing. Either way the digest is computed by the store. The
   * putter may keep a reference to `encoded`: the caller must not change it.
   */
  put(directory: Directory, encoded?: Uint8Array): Promise<void>;
  /** Ends the upload; resolves to the root digest once the whole closure is stored. */
  close(): Promise<Digest>;
  /** Abandons the upload: nothing of it becomes visible (during close(): see the rules above). */
  abort(reason?: unknown): Promise<void>;
}
