/**
 * LmdbRefStore: castore's refs (spec §9) in the same LMDB environment as the
 * directories and blobs of a path, in the named database "refs": key = the
 * name's bytes (ASCII), value = the 32 digest bytes. LMDB has one writer at
 * a time, so a compare-and-set done inside one write transaction is atomic
 * across every process that opens the environment.
 */
import { resolve } from "node:path";
import {
  BackendError,
  CorruptionError,
  Digest,
  refHolds,
  throwIfAborted,
  type CallOptions,
  type Ref,
  type RefExpectation,
  type RefListOptions,
  type RefStore,
} from "@castore-ts/core";
import type { Database, RootDatabase } from "lmdb";
import { openLmdbEnv } from "./lmdb-env.js";
import { type LmdbStoreOptions, parseLmdbUrl } from "./lmdb-url.js";

/** Name of the LMDB database that holds refs. */
export const REFS_DB = "refs";

export class LmdbRefStore implements RefStore {
  readonly backend: string;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    private readonly env: RootDatabase<Uint8Array, Uint8Array>,
    private readonly refs: Database<Uint8Array, Uint8Array>,
    private readonly noSync: boolean,
    /** Handles opened for this store's users that close with it (what a RefService's protect reads). */
    private readonly closesWith: readonly { close(): Promise<void> }[],
  ) {
    this.backend = `lmdb:${path}`;
  }

  /**
   * Opens (creating if needed) the environment in directory `path`; failures
   * are BackendErrors naming it. `closesWith`: other handles to close when
   * this store is closed.
   */
  static open(
    path: string,
    opts: LmdbStoreOptions = {},
    closesWith: readonly { close(): Promise<void> }[] = [],
  ): LmdbRefStore {
    const absolute = resolve(path);
    const { env, dbs } = openLmdbEnv(absolute, [REFS_DB], opts);
    return new LmdbRefStore(absolute, env, dbs[REFS_DB], opts.noSync ?? false, closesWith);
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

  async compareAndSetRef(
    name: string,
    digest: Digest | null,
    expect: RefExpectation,
    opts?: CallOptions,
  ): Promise<{ swapped: boolean; current: Digest | undefined }> {
    this.check(opts);
    const key = Buffer.from(name);
    const db = this.refs;
    // The read and the write in one write transaction: no other writer, in
    // this process or another, runs between them.
    const result = await db.childTransaction(() => {
      const current = this.digestOf(name, db.getBinary(key));
      if (!refHolds(current, expect)) return { swapped: false, current };
      if (digest === null) db.removeSync(key);
      else db.putSync(key, digest.bytes);
      return { swapped: true, current };
    });
    if (result.swapped && !this.noSync) await this.env.flushed;
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
    this.closing ??= Promise.all([this.env.close(), ...this.closesWith.map((h) => h.close())]).then(() => undefined);
    return this.closing;
  }
}
