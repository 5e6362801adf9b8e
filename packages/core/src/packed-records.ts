/**
 * PackedRecords: byte strings that start with a 32-byte digest (a
 * directory's digest followed by its canonical bytes), found by that digest,
 * with no JavaScript object per record.
 *
 * A record's bytes stay where they are, in a buffer the caller filled (an
 * arena's chunk, an upload's chunk a store adopts): the record is where they
 * are, the buffer's number, the offset and the length, in typed arrays
 * indexed by record number. A caller that keeps more per record (the upload
 * check: sizes; the memory store: when last used) keeps it in typed arrays
 * of its own, indexed the same way. Digests are found through an
 * open-addressing table of record numbers (linear probing; a deletion
 * shifts the rest of its run back, so there are no tombstones).
 *
 * Why: an object, a view and a map entry per directory were 180 to 240
 * bytes of JavaScript heap each (an upload's check, and the memory store
 * after it). A large upload made them faster than anything else, they
 * outlived the young generation and filled the old one, and V8 then marked
 * the whole heap during the upload (100 000 directories: about a third of
 * the upload's time). Here a record is 12 bytes of typed arrays and two or
 * four slots of the table (8 bytes each: the record and its digest's hash),
 * all outside the JavaScript heap.
 *
 * A buffer is kept while a record points into it (counted), so deleting
 * every record of a chunk lets the chunk go.
 */
import { DIGEST_LENGTH } from "./digest.js";
import { digestBytesEqual } from "./digest-bytes.js";

const NO_RECORD = -1;
/** Most uploads are a few directories: their check starts small (a table of 32 slots). */
const MIN_RECORDS = 16;

export class PackedRecords {
  /**
   * Per record, three numbers in a row (one array: each growth allocates
   * one, not three): the buffer's number, the offset in it, and the length
   * of the digest and canonical bytes together (0: a free record).
   */
  private place = new Uint32Array(3 * MIN_RECORDS);
  /** Records ever used (free ones below it are in `free`). */
  private records = 0;
  private readonly free: number[] = [];
  private live = 0;

  // Per buffer.
  private readonly buffers: (Uint8Array | undefined)[] = [];
  private readonly bufferIds = new Map<ArrayBufferLike, number>();
  private readonly pointedAt: number[] = [];
  private readonly freeBuffers: number[] = [];
  private lastBuffer: ArrayBufferLike | undefined;
  private lastBufferId = 0;
  /** The array the last record was added from, its buffer's number and its offset in that buffer. */
  private lastBytes: Uint8Array | undefined;
  private lastBytesId = 0;
  private lastBytesOffset = 0;

  /**
   * The table: per slot, the record number + 1 (0: empty) and then the
   * digest's 32-bit hash, so a probe compares digests only where the hashes
   * agree. Slots are a power of two, at least twice the records.
   */
  private table = new Int32Array(2 * 2 * MIN_RECORDS);
  private slotCount = 2 * MIN_RECORDS;

  get size(): number {
    return this.live;
  }

  /** Record numbers are below this: a caller's own per-record arrays need this many elements. */
  get capacity(): number {
    return this.place.length / 3;
  }

  /** How many buffers records point into (each is kept while one does). */
  get buffersKept(): number {
    return this.bufferIds.size;
  }

  /** The record holding `digest` (its first 32 bytes are compared), or -1. */
  find(digest: Uint8Array): number {
    const entry = this.table[2 * this.slotOf(digest, 0, hashAt(digest, 0))];
    return entry === 0 ? NO_RECORD : entry - 1;
  }

  /** Makes room for `more` records at once (an upload's), so the table and the records grow once, not at every doubling. */
  reserve(more: number): void {
    const wanted = this.live + more;
    let slots = this.slotCount;
    while (2 * wanted > slots) slots = grownLength(slots);
    if (slots !== this.slotCount) this.rehash(slots);
    if (wanted > this.place.length / 3) this.growRecords(wanted);
  }

  /** Adds a record for `digestAndBytes` (a digest not stored yet: find() first), kept as it is (not copied); its number. */
  add(digestAndBytes: Uint8Array): number {
    return this.addIn(digestAndBytes, 0, digestAndBytes.length);
  }

  /** add() of the `length` bytes at `offset` in `bytes`, without a view of them. */
  addIn(bytes: Uint8Array, offset: number, length: number): number {
    if (2 * (this.live + 1) > this.slotCount) this.rehash(grownLength(this.slotCount));
    const record = this.free.pop() ?? this.newRecord();
    this.point(record, bytes, offset, length);
    this.insert(this.table, this.slotCount - 1, record, hashAt(bytes, offset));
    this.live++;
    return record;
  }

  /**
   * The record holding the digest at `offset` in `bytes`; when there is none,
   * a new record for the `length` bytes there (kept as they are, like
   * addIn). One probe where find() then addIn() take two: `size` tells the
   * caller which it was (it grows only for a new record).
   */
  findOrAddIn(bytes: Uint8Array, offset: number, length: number): number {
    if (2 * (this.live + 1) > this.slotCount) this.rehash(grownLength(this.slotCount));
    const hash = hashAt(bytes, offset);
    const slot = this.slotOf(bytes, offset, hash);
    const entry = this.table[2 * slot];
    if (entry !== 0) return entry - 1;
    const record = this.free.pop() ?? this.newRecord();
    this.point(record, bytes, offset, length);
    this.table[2 * slot] = record + 1;
    this.table[2 * slot + 1] = hash;
    this.live++;
    return record;
  }

  /** Removes the record holding `digest`: its number (free for a later add), or -1 when there was none. */
  delete(digest: Uint8Array): number {
    const table = this.table;
    const mask = this.slotCount - 1;
    const slot = this.slotOf(digest, 0, hashAt(digest, 0));
    if (table[2 * slot] === 0) return NO_RECORD;
    const record = table[2 * slot] - 1;
    this.unpoint(record);
    this.place[3 * record + 2] = 0;
    this.free.push(record);
    this.live--;
    // Backward shift: move each later entry of the run into the hole when its home slot is not after the hole.
    let hole = slot;
    for (let next = (hole + 1) & mask; table[2 * next] !== 0; next = (next + 1) & mask) {
      const home = table[2 * next + 1] & mask;
      // `home` lies cyclically in (hole, next]: the entry is where it must be.
      if (hole <= next ? hole < home && home <= next : hole < home || home <= next) continue;
      table[2 * hole] = table[2 * next];
      table[2 * hole + 1] = table[2 * next + 1];
      hole = next;
    }
    table[2 * hole] = 0;
    return record;
  }

  /** The record's digest and canonical bytes (a view into the kept buffer). */
  viewOf(record: number): Uint8Array {
    const place = this.place;
    const offset = place[3 * record + 1];
    return this.buffers[place[3 * record]]!.subarray(offset, offset + place[3 * record + 2]);
  }

  /** The record's canonical bytes (a view into the kept buffer). */
  bytesOf(record: number): Uint8Array {
    const place = this.place;
    const offset = place[3 * record + 1];
    return this.buffers[place[3 * record]]!.subarray(offset + DIGEST_LENGTH, offset + place[3 * record + 2]);
  }

  /** Points the record at other bytes with the same digest (a repair; corruption a test injects). */
  replace(record: number, digestAndBytes: Uint8Array): void {
    this.unpoint(record);
    this.point(record, digestAndBytes, 0, digestAndBytes.length);
  }

  /** Every live record's number (a snapshot: the store may change while the caller goes through it). */
  recordNumbers(): number[] {
    const out: number[] = [];
    for (let r = 0; r < this.records; r++) if (this.place[3 * r + 2] !== 0) out.push(r);
    return out;
  }

  /**
   * The probe every lookup shares: the slot of the record holding the digest
   * at `offset` in `bytes` (whose hash is `hash`), else the empty slot that
   * ends its run (where it would go).
   */
  private slotOf(bytes: Uint8Array, offset: number, hash: number): number {
    const table = this.table;
    const mask = this.slotCount - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = table[2 * slot];
      if (entry === 0) return slot;
      if (table[2 * slot + 1] === hash) {
        const record = entry - 1;
        if (digestBytesEqual(this.buffers[this.place[3 * record]]!, this.place[3 * record + 1], bytes, offset))
          return slot;
      }
    }
  }

  private newRecord(): number {
    if (this.records === this.place.length / 3) this.growRecords(grownLength(this.records));
    return this.records++;
  }

  private growRecords(atLeast: number): void {
    let grown = this.place.length / 3;
    while (grown < atLeast) grown = grownLength(grown);
    this.place = grownTo(this.place, 3 * grown);
  }

  /** Records where the `length` bytes at `offset` in `bytes` are: their buffer (counted) and offset in it. */
  private point(record: number, bytes: Uint8Array, offset: number, length: number): void {
    // A caller that adds many records from one array (addIn) skips the `buffer` and `byteOffset` getters.
    let id: number;
    let base: number;
    if (bytes === this.lastBytes) {
      id = this.lastBytesId;
      base = this.lastBytesOffset;
    } else {
      id = this.bufferIdOf(bytes.buffer);
      base = bytes.byteOffset;
      this.lastBytes = bytes;
      this.lastBytesId = id;
      this.lastBytesOffset = base;
    }
    this.pointedAt[id]++;
    this.place[3 * record] = id;
    this.place[3 * record + 1] = base + offset;
    this.place[3 * record + 2] = length;
  }

  /** The record no longer points into its buffer: a buffer nothing points into is let go. */
  private unpoint(record: number): void {
    const id = this.place[3 * record];
    if (--this.pointedAt[id] !== 0) return;
    const buffer = this.buffers[id]!.buffer;
    this.bufferIds.delete(buffer);
    if (this.lastBuffer === buffer) this.lastBuffer = undefined;
    if (this.lastBytesId === id) this.lastBytes = undefined;
    this.buffers[id] = undefined;
    this.freeBuffers.push(id);
  }

  private bufferIdOf(buffer: ArrayBufferLike): number {
    // Consecutive directories are mostly in the same chunk.
    if (buffer === this.lastBuffer) return this.lastBufferId;
    let id = this.bufferIds.get(buffer);
    if (id === undefined) {
      id = this.freeBuffers.pop() ?? this.buffers.length;
      this.buffers[id] = new Uint8Array(buffer);
      this.pointedAt[id] = 0;
      this.bufferIds.set(buffer, id);
    }
    this.lastBuffer = buffer;
    this.lastBufferId = id;
    return id;
  }

  /** Puts a record with this hash in the first free slot of its run. */
  private insert(table: Int32Array, mask: number, record: number, hash: number): void {
    let slot = hash & mask;
    while (table[2 * slot] !== 0) slot = (slot + 1) & mask;
    table[2 * slot] = record + 1;
    table[2 * slot + 1] = hash;
  }

  private rehash(slots: number): void {
    const old = this.table;
    const table = new Int32Array(2 * slots);
    for (let slot = 0; slot < this.slotCount; slot++)
      if (old[2 * slot] !== 0) this.insert(table, slots - 1, old[2 * slot] - 1, old[2 * slot + 1]);
    this.table = table;
    this.slotCount = slots;
  }
}

/** 32 bits of the digest that starts at `at` in `bytes` (BLAKE3 output is uniform: any bits will do). */
function hashAt(bytes: Uint8Array, at: number): number {
  // A signed 32-bit integer (no heap number); `& mask` makes it a slot.
  return bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24);
}

/**
 * The next length of a table or column that is full: four times while
 * small, so a read or an upload of a few thousand directories grows (copies
 * and rehashes) a few times rather than ten; then twice.
 */
export function grownLength(length: number): number {
  return length < 65536 ? 4 * length : 2 * length;
}

/** A typed array of `length` elements of `from`'s type, `from` copied into its start: a per-record column grown. */
export function grownTo<T extends Uint8Array | Uint32Array | Float64Array>(from: T, length: number): T {
  const to = new (from.constructor as new (length: number) => T)(length);
  to.set(from);
  return to;
}
