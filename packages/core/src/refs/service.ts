/**
 * Named roots (spec §9). A backend implements the small RefStore (get, one
 * atomic compare-and-set, list); RefService, over a RefStore and the same
 * store's directories and blobs, checks names and refuses a ref to a tree the
 * store does not wholly hold.
 */
import type { BlobService } from "../blob/service.js";
import { directoryDigest } from "../canonical.js";
import { Digest } from "../digest.js";
import { ClosureError, ConflictError, throwIfAborted, ValidationError } from "../errors.js";
import type { CallOptions, DirectoryService } from "../service.js";
import { checkRefName } from "./name.js";

export interface Ref {
  name: string;
  digest: Digest;
}

/** What a ref must hold for a change to go ahead: a digest, `null` for "no such ref", undefined for anything. */
export type RefExpectation = Digest | null | undefined;

export interface RefListOptions extends CallOptions {
  /** Only names starting with this text (a plain prefix, not a path component). */
  prefix?: string;
}

/** What a backend implements to store refs. Names come checked; digests are not looked at. */
export interface RefStore {
  /**
   * The store checks the closure of what it is set to itself (a gRPC client:
   * the server does), so RefService does not read the tree again.
   */
  readonly checksClosure?: boolean;
  getRef(name: string, opts?: CallOptions): Promise<Digest | undefined>;
  /**
   * One atomic step: when the ref holds `expect` (see RefExpectation), it is
   * set to `digest` (`null`: removed) and the result is `{ swapped: true }`;
   * otherwise nothing changes and the result says what the ref holds. Durable
   * when it resolves.
   */
  compareAndSetRef(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    opts?: CallOptions,
  ): Promise<SwapResult>;
  /** Every ref (or those under `opts.prefix`), in ascending order of name. */
  listRefs(opts?: RefListOptions): AsyncIterable<Ref>;
  close(): Promise<void>;
}

export interface SetRefOptions extends CallOptions {
  /** Compare-and-swap: the ref must hold this digest (`null`: must not exist), else ConflictError. */
  expect?: Digest | null;
}

/** Digests of file blobs asked about in one `has` call. */
const BLOB_BATCH = 1000;

/**
 * Whether `root`'s whole closure is stored: every directory (read through
 * getRecursive, so each is re-hashed and validated) and, when `blobs` is
 * given, every file's blob. ClosureError naming the first thing missing.
 */
export async function checkClosureStored(
  directories: DirectoryService,
  blobs: BlobService | undefined,
  root: Digest,
  opts: CallOptions = {},
): Promise<void> {
  // Directories named by a parent and not yet read; getRecursive yields each once, parents first.
  const expected = new Set<string>([root.hex]);
  const seen = new Set<string>();
  let pendingBlobs: Digest[] = [];
  const flushBlobs = async () => {
    if (!blobs || pendingBlobs.length === 0) return;
    const batch = pendingBlobs;
    pendingBlobs = [];
    const present = await blobs.has(batch, opts);
    const missing = batch.findIndex((_, i) => !present[i]);
    if (missing >= 0) {
      throw new ClosureError(`tree ${root.hex} is not wholly stored: blob ${batch[missing].hex} is missing`);
    }
  };
  for await (const directory of directories.getRecursive(root, opts)) {
    throwIfAborted(opts.signal);
    const digest = directoryDigest(directory);
    seen.add(digest.hex);
    for (const child of directory.directories) expected.add(Digest.fromBytes(child.digest).hex);
    for (const file of directory.files) {
      pendingBlobs.push(Digest.fromBytes(file.digest));
      if (pendingBlobs.length >= BLOB_BATCH) await flushBlobs();
    }
  }
  if (seen.size === 0) throw new ClosureError(`tree ${root.hex} is not stored`);
  for (const hex of expected) {
    if (!seen.has(hex)) throw new ClosureError(`tree ${root.hex} is not wholly stored: directory ${hex} is missing`);
  }
  await flushBlobs();
}

export interface RefServiceOptions {
  /** close() also closes `directories` and `blobs` (they were opened for this service). Default: only the ref store. */
  closeAll?: boolean;
  /**
   * Replaces the closure check of `set` on a store that collects garbage
   * (spec §10.2): checks the tree is wholly stored and marks it used, so a
   * collection running meanwhile cannot take it (core's protectClosure).
   */
  protect?(root: Digest, opts?: CallOptions): Promise<void>;
}

/** Refs with names checked and targets verified (spec §9). */
export class RefService {
  constructor(
    readonly store: RefStore,
    /** The same store's directories: `set` reads the tree through them. */
    readonly directories: DirectoryService,
    /** The same store's blobs, when it has any: `set` checks every file's blob is there. */
    readonly blobs: BlobService | undefined,
    private readonly options: RefServiceOptions = {},
  ) {}

  get(name: string, opts?: CallOptions): Promise<Digest | undefined> {
    return this.store.getRef(checkRefName(name), opts);
  }

  /**
   * Points `name` at `digest`, after checking that the store holds the whole
   * tree (ClosureError otherwise). With `expect`, only if the ref holds that
   * (ConflictError naming what it holds otherwise).
   */
  async set(name: string, digest: Digest, opts: SetRefOptions = {}): Promise<void> {
    conflictUnlessSwapped(name, opts.expect, await this.trySet(name, digest, opts));
  }

  /** set(), but a lost compare-and-swap is an answer: what the ref held, and whether it changed. */
  async trySet(name: string, digest: Digest, opts: SetRefOptions = {}): Promise<SwapResult> {
    checkRefName(name);
    checkExpectation(opts.expect);
    if (this.options.protect) await this.options.protect(digest, opts);
    else if (!this.store.checksClosure) await checkClosureStored(this.directories, this.blobs, digest, opts);
    return this.store.compareAndSetRef(name, digest, opts.expect, opts);
  }

  /** Removes `name`; false when there was none (and no `expect` was given). */
  async delete(name: string, opts: SetRefOptions = {}): Promise<boolean> {
    const result = await this.tryDelete(name, opts);
    conflictUnlessSwapped(name, opts.expect, result);
    return result.current !== undefined;
  }

  /** delete(), but a lost compare-and-swap is an answer, as for trySet. */
  async tryDelete(name: string, opts: SetRefOptions = {}): Promise<SwapResult> {
    checkRefName(name);
    checkExpectation(opts.expect);
    return this.store.compareAndSetRef(name, null, opts.expect, opts);
  }

  list(opts?: RefListOptions): AsyncIterable<Ref> {
    return this.store.listRefs(opts);
  }

  async close(): Promise<void> {
    if (!this.options.closeAll) return this.store.close();
    await Promise.all([this.store.close(), this.directories.close(), this.blobs?.close()]);
  }
}

/** What a compare-and-set did: whether it changed the ref, and what the ref held before. */
export interface SwapResult {
  swapped: boolean;
  current: Digest | undefined;
}

function checkExpectation(expect: unknown): void {
  if (expect !== undefined && expect !== null && !(expect instanceof Digest))
    throw new ValidationError(`expect must be a Digest, null or undefined, got ${typeof expect}`);
}

function conflictUnlessSwapped(name: string, expect: Digest | null | undefined, result: SwapResult): void {
  if (result.swapped) return;
  const held = result.current ? `holds ${result.current.hex}` : "does not exist";
  const wanted = expect ? `hold ${expect.hex}` : "not exist";
  throw new ConflictError(`ref ${name} ${held}; the change expected it to ${wanted}`);
}
