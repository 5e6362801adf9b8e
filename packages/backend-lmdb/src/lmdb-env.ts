/**
 * Opening the LMDB environment of a store directory. The directory store and
 * the blob store of one `lmdb:` URL live in the same environment, as separate
 * named databases, and both open it through here so that they agree on its
 * flags (lmdb-js shares one native environment per path within a process, so
 * whichever opens it first sets them).
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { BackendError } from "@castore-ts/core";
import { open, type Database, type RootDatabase } from "lmdb";
import type { LmdbStoreOptions } from "./lmdb-url.js";

/**
 * Named databases an environment may hold: "directories", "blob-chunks",
 * "blob-manifests", "refs", "used", and spares (LMDB's maxdbs is a limit of
 * the open environment, not stored in the file: raising it needs no
 * migration).
 */
const MAX_DBS = 8;

/**
 * LMDB's meta page starts with a page header (24 bytes in the LMDB 1.x that
 * lmdb-js 3 embeds) followed by the magic 0xBEEFC0DE, little endian.
 */
const META_MAGIC_OFFSET = 24;
const META_MAGIC = 0xbeefc0de;
const MIN_DATA_FILE = 8192; // two meta pages of the smallest page size

/**
 * LMDB trusts its data file: opening one that is not LMDB crashes the
 * process (SIGSEGV) instead of failing. So look before opening: an existing,
 * non-empty data.mdb must be at least two pages long and carry the magic.
 */
function checkDataFile(path: string): string | undefined {
  const file = join(path, "data.mdb");
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return `cannot read ${file}: ${(e as Error).message}`;
  }
  try {
    const size = statSync(file).size;
    if (size === 0) return undefined; // LMDB initialises an empty file
    const head = Buffer.alloc(META_MAGIC_OFFSET + 4);
    const read = readSync(fd, head, 0, head.length, 0);
    if (size < MIN_DATA_FILE || read < head.length || head.readUInt32LE(META_MAGIC_OFFSET) !== META_MAGIC) {
      return `${file} is not an LMDB data file (no LMDB meta page at its start)`;
    }
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** An open environment and the named binary databases asked for. */
export interface OpenedLmdbEnv<Name extends string> {
  env: RootDatabase<Uint8Array, Uint8Array>;
  dbs: Record<Name, Database<Uint8Array, Uint8Array>>;
}

/**
 * Opens (creating if needed) the environment in directory `path` and the
 * named databases in it (binary keys and values). Any failure — the path is
 * a file, cannot be created, is not writable, is not an LMDB environment — is
 * a BackendError naming the path.
 */
export function openLmdbEnv<Name extends string>(
  path: string,
  names: readonly Name[],
  opts: LmdbStoreOptions = {},
): OpenedLmdbEnv<Name> {
  const backend = `lmdb:${path}`;
  const fail = (why: string, cause?: unknown): never => {
    throw new BackendError(backend, `cannot open LMDB store at ${path}: ${why}`, { cause, unavailable: true });
  };
  try {
    if (!statSync(path).isDirectory()) fail("it exists and is not a directory");
  } catch (e) {
    if (e instanceof BackendError) throw e;
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") fail((e as Error).message, e);
    // absent: lmdb creates it (and its parents)
  }
  const bad = checkDataFile(path);
  if (bad) fail(bad);
  let env: RootDatabase<Uint8Array, Uint8Array> | undefined;
  try {
    env = open<Uint8Array, Uint8Array>({
      path,
      // The URL always names a directory, even one whose name has a dot in it.
      noSubdir: false,
      keyEncoding: "binary",
      encoding: "binary",
      mapSize: opts.mapSize,
      noSync: opts.noSync ?? false,
      maxDbs: MAX_DBS,
    });
    const dbs = {} as Record<Name, Database<Uint8Array, Uint8Array>>;
    for (const name of names) {
      dbs[name] = env.openDB<Uint8Array, Uint8Array>(name, { keyEncoding: "binary", encoding: "binary" });
    }
    return { env, dbs };
  } catch (e) {
    void env?.close().catch(() => undefined);
    return fail((e as Error).message ?? String(e), e);
  }
}
