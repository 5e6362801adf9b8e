/**
 * LmdbRefStore: castore's refs (spec §9) in the same LMDB environment as the
 * directories and blobs of a path, in the named database "refs": key = the
 * name's bytes (ASCII), value = the 32 digest bytes. LMDB has one writer at
 * a time, so a compare-and-set done inside one write transaction is atomic
 * across every process that opens the environment.
 *
 * Setting a ref protects its tree (spec §10.2) in the store itself
 * (`checksClosure`), so every way of opening it does: core's protectClosure
 * over this environment checks the whole tree is stored and marks it used,
 * then the ref is written, fenced against a collection starting in between
 * (core's fencedSet): the write transaction gives up if the count of
 * collections started (lmdb-used.ts) moved since before the marking.
 */
import { resolve } from "node:path";
import {
  BackendError,
  COLLECTION_STARTED,
  CorruptionError,
  Digest,
  fencedSet,
  protectClosure,
  refHolds,
  throwIfAborted,
  type CallOptions,
  type Ref,
  type RefExpectation,
  type RefListOptions,
  type RefStore,
  type SwapResult,
} from "@castore-ts/core";
import type { Database, RootDatabase } from "lmdb";
import { openLmdbEnv } from "./lmdb-env.js";
import { type LmdbGcParts, openLmdbGcParts } from "./lmdb-gc-parts.js";
import { collectionsStarted } from "./lmdb-used.js";
import { type LmdbStoreOptions, parseLmdbUrl } from "./lmdb-url.js";

/** Name of the LMDB database that holds refs. */
export const REFS_DB = "refs";

export class LmdbRefStore implements RefStore {
  readonly backend: string;
  /** RefService leaves the closure check to this store: it protects the tree itself (see above). */
  readonly checksClosure = true;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    private readonly env: RootDatabase<Uint8Array, Uint8Array>,
    private readonly refs: Database<Uint8Array, Uint8Array>,
    private readonly noSync: boolean,
    /** What a set protects its tree through; the environment's collector reads them too. Closed with this store. */
    readonly parts: LmdbGcParts,
  ) {
    this.backend = `lmdb:${path}`;
  }

  /** Opens (creating if needed) the environment in directory `path`; failures are BackendErrors naming it. */
  static open(path: string, opts: LmdbStoreOptions = {}): LmdbRefStore {
    const absolute = resolve(path);
    const { env, dbs } = openLmdbEnv(absolute, [REFS_DB], opts);
    return new LmdbRefStore(absolute, env, dbs[REFS_DB], opts.noSync ?? false, openLmdbGcParts(absolute, opts));
  }

  static openUrl(url: URL | string): LmdbRefStore {
    const { path, options } = parseLmdbUrl(url);
    return LmdbRefStore.open(path, options);
  }

  private check(opts: CallOptions | undefined): void {
    if (this.closing) throw new BackendError(this.backend, "store is closed");
    throwIfAborted(opts?.signal);
  }

  private digestOf(name: string, value: Uint8Array | undefined): Digest | undefined {
    if (value === undefined) return undefined;
    if (value.length !== 32) {
      throw new CorruptionError(`${this.backend}: ref ${name} holds ${value.length} bytes, not a 32-byte digest`);
    }
    return Digest.fromBytes(value);
  }

  async getRef(name: string, opts?: CallOptions): Promise<Digest | undefined> {
    this.check(opts);
    this.env.resetReadTxn();
    return this.digestOf(name, this.refs.getBinary(Buffer.from(name)));
  }

  /** Setting (a digest): the tree is protected first, fenced against a collection's start (see above). */
  async compareAndSetRef(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    opts: CallOptions = {},
  ): Promise<SwapResult> {
    this.check(opts);
    if (digest === null) return (await this.swap(name, null, expect, undefined)) as SwapResult;
    const used = this.parts.objects.used;
    return fencedSet(this.backend, name, {
      collectionsStarted: async () => {
        this.env.resetReadTxn();
        return collectionsStarted(used);
      },
      protect: () => protectClosure(this.parts, digest, opts),
      swap: (started) => this.swap(name, digest, expect, started),
    });
  }

  /**
   * The compare-and-set, one write transaction: no other writer, in this
   * process or another, runs between its read and its write. With `started`
   * (a set), it first gives up, changing nothing, if a collection started
   * since (COLLECTION_STARTED).
   */
  private async swap(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    started: number | undefined,
  ): Promise<SwapResult | typeof COLLECTION_STARTED> {
    const key = Buffer.from(name);
    const db = this.refs;
    const used = this.parts.objects.used;
    const result = await db.childTransaction(() => {
      if (started !== undefined && collectionsStarted(used) !== started) return COLLECTION_STARTED;
      const current = this.digestOf(name, db.getBinary(key));
      if (!refHolds(current, expect)) return { swapped: false, current };
      if (digest === null) db.removeSync(key);
      else db.putSync(key, digest.bytes);
      return { swapped: true, current };
    });
    if (result !== COLLECTION_STARTED && result.swapped && !this.noSync) await this.env.flushed;
    return result;
  }

  async *listRefs(opts: RefListOptions = {}): AsyncIterable<Ref> {
    this.check(opts);
    const prefix = opts.prefix ?? "";
    this.env.resetReadTxn();
    // One snapshot: LMDB keys are in byte order, the order refs are listed in.
    const entries = this.refs.getRange({ start: Buffer.from(prefix) });
    for (const { key, value } of entries) {
      const name = Buffer.from(key).toString("latin1");
      if (!name.startsWith(prefix)) break;
      throwIfAborted(opts.signal);
      yield { name, digest: this.digestOf(name, value)! };
    }
  }

  close(): Promise<void> {
    this.closing ??= Promise.all([this.env.close(), this.parts.close()]).then(() => undefined);
    return this.closing;
  }
}
