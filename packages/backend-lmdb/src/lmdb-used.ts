/**
 * When each stored object was last written or used (its `usedAt`, spec §10),
 * in the named database "used" of the environment:
 * - key = one byte for the kind ("d" directory, "b" blob manifest, "c"
 *   chunk), then the object's 32 digest bytes;
 * - value = 16 bytes: usedAt (ms since the epoch, by the store's clock
 *   below) as a float64 little endian, then the object's stored size in
 *   bytes, float64 little endian.
 *
 * The size is kept here so that listing objects for a collection reads only
 * this database and the object databases' keys, never a chunk's bytes (a
 * value over a page long lives on overflow pages a key scan does not touch).
 *
 * One more key, "clock" (5 bytes: no object's key has that length), holds
 * the last usedAt given out. Each write transaction that marks objects takes
 * a time strictly after it (issueUsedAt), and a collection starts strictly
 * after it too (countCollectionIn): LMDB has one writer at a time across
 * processes, so everything committed before a collection started is older
 * than its start, even within the same millisecond and when the writer is
 * another process (a `castore serve` beside a `castore gc`).
 *
 * And "collections" (11 bytes) counts the collections started, as a
 * float64: a ref's set reads it before protecting its tree and gives up its
 * write if it moved (core's fencedSet). The count and the start's clock are
 * written in one transaction.
 *
 * Every function here that writes runs inside a write transaction the
 * caller opened (lmdb-js's childTransaction), so marking is atomic with the
 * write or the check it belongs to.
 */
import type { ObjectKind } from "@castore-ts/core";
import type { Database } from "lmdb";

/** Name of the LMDB database that holds usedAt and size per stored object. */
export const USED_DB = "used";

const KIND_BYTE: Record<ObjectKind, number> = { directory: 0x64, blob: 0x62, chunk: 0x63 };
const VALUE_LENGTH = 16;
const CLOCK_KEY = Buffer.from("clock");
const COLLECTIONS_KEY = Buffer.from("collections");
/** How far apart two times given out in the same millisecond are (a few float64 steps at today's epoch ms). */
const TICK = 0.001;

/** What the "used" database records of one object. */
export interface UsedEntry {
  usedAt: number;
  size: number;
}

type BinaryDb = Database<Uint8Array, Uint8Array>;

/** The float64 a bookkeeping key ("clock", "collections") holds; undefined when it holds none. */
function readNumber(used: BinaryDb, key: Buffer): number | undefined {
  const value = used.getBinary(key);
  return value?.length === 8 ? Buffer.from(value.buffer, value.byteOffset, 8).readDoubleLE(0) : undefined;
}

/** In a write transaction: `key` holds `n` (a float64, little endian). */
function writeNumber(used: BinaryDb, key: Buffer, n: number): void {
  const value = Buffer.allocUnsafe(8);
  value.writeDoubleLE(n, 0);
  used.putSync(key, value);
}

/**
 * The store's clock (ms since the epoch): this machine's wall time, but
 * strictly after every usedAt given out before, as of the (write)
 * transaction it is read in.
 */
function storeNow(used: BinaryDb): number {
  return Math.max(Date.now(), (readNumber(used, CLOCK_KEY) ?? -Infinity) + TICK);
}

/** In a write transaction: the usedAt for what it marks (storeNow), recorded as the last one given out. */
export function issueUsedAt(used: BinaryDb): number {
  const now = storeNow(used);
  writeNumber(used, CLOCK_KEY, now);
  return now;
}

/** How many collections have started (in the current read or write transaction). */
export function collectionsStarted(used: BinaryDb): number {
  return readNumber(used, COLLECTIONS_KEY) ?? 0;
}

/** In a write transaction: counts a collection in and answers its start on the store's clock (issueUsedAt). */
export function countCollectionIn(used: BinaryDb): number {
  writeNumber(used, COLLECTIONS_KEY, collectionsStarted(used) + 1);
  return issueUsedAt(used);
}

/** The "used" key of an object: kind byte, then its digest bytes. */
export function usedKey(kind: ObjectKind, digest: Uint8Array): Buffer {
  const key = Buffer.allocUnsafe(1 + digest.length);
  key[0] = KIND_BYTE[kind];
  key.set(digest, 1);
  return key;
}

export function encodeUsedEntry(entry: UsedEntry): Buffer {
  const value = Buffer.allocUnsafe(VALUE_LENGTH);
  value.writeDoubleLE(entry.usedAt, 0);
  value.writeDoubleLE(entry.size, 8);
  return value;
}

/**
 * The entry a stored value holds; undefined for a value of another length,
 * which is then treated as absent (the object counts as unused-time unknown:
 * it is re-marked when listed and never deleted before that).
 */
export function decodeUsedEntry(value: Uint8Array | undefined): UsedEntry | undefined {
  if (value === undefined || value.length !== VALUE_LENGTH) return undefined;
  const view = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  return { usedAt: view.readDoubleLE(0), size: view.readDoubleLE(8) };
}

/** The usedAt and size stored for one object (in the current read or write transaction). */
export function readUsed(used: BinaryDb, kind: ObjectKind, digest: Uint8Array): UsedEntry | undefined {
  return decodeUsedEntry(used.getBinary(usedKey(kind, digest)));
}

/**
 * markUsed's key and value, reused: a put inside a write transaction copies
 * them into the map before it returns. (An import marks a chunk per file: a
 * key, a value and an entry object each were garbage on its main thread.)
 */
const markKey = Buffer.alloc(1 + 32);
const markValue = Buffer.alloc(VALUE_LENGTH);

/** In a write transaction: the object (of `size` stored bytes) is used at `now`. */
export function markUsed(used: BinaryDb, kind: ObjectKind, digest: Uint8Array, now: number, size: number): void {
  if (digest.length !== 32) return void used.putSync(usedKey(kind, digest), encodeUsedEntry({ usedAt: now, size }));
  markKey[0] = KIND_BYTE[kind];
  markKey.set(digest, 1);
  markValue.writeDoubleLE(now, 0);
  markValue.writeDoubleLE(size, 8);
  used.putSync(markKey, markValue);
}

/**
 * In a write transaction: when `objects` holds `digest`, marks it used at
 * `now` and answers true; otherwise writes nothing and answers false. Its
 * size comes from its "used" entry, or (an object stored before this
 * database existed) from its value.
 */
export function touchStored(
  used: BinaryDb,
  objects: BinaryDb,
  kind: ObjectKind,
  digest: Uint8Array,
  now: number,
): boolean {
  const known = readUsed(used, kind, digest);
  const size = known !== undefined && objects.doesExist(digest) ? known.size : storedSize(objects, digest);
  if (size === undefined) return false;
  markUsed(used, kind, digest, now, size);
  return true;
}

/** A stored value's length, or undefined when absent (reads the value once, without keeping it). */
export function storedSize(objects: BinaryDb, digest: Uint8Array): number | undefined {
  const db = objects as BinaryDb & { lastSize: number };
  // getBinaryFast reads into lmdb-js's reusable buffer and sets lastSize: no copy kept.
  return db.getBinaryFast(digest) === undefined ? undefined : db.lastSize;
}
