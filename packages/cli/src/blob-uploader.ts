/**
 * Stores the contents of imported files, sending only what the store lacks.
 *
 * The digest of a file is known only once it has been read to the end, and
 * `castore import` reads each file once where it can. So:
 *
 * - A small file (one that fits the importer's read buffer, 1 MiB) is read
 *   whole into memory and hashed; its bytes wait in a batch. A batch (up to
 *   BATCH_FILES files or BATCH_BYTES bytes) asks the store once, `has` of all
 *   its digests (over gRPC that is a Stat per digest, 16 at a time), and only
 *   the missing blobs are written, from the bytes already in memory, all in
 *   one `putMany` where the service has one (lmdb: one write transaction),
 *   with the digests the import computed. Read once, sent at most once.
 * - A large file is read once to hash it (bounded memory: a 1 MiB buffer),
 *   then the store is asked about that digest alone (one round trip; the read
 *   costs more), and only when the blob is missing is the file read a second
 *   time, streaming into the blob writer. The trade-off: a *new* large file
 *   is read twice (usually from the page cache the first read filled), while
 *   an unchanged one, the common case on a re-import, is read once and not
 *   sent. Sending it unconditionally from the first read would cost a full
 *   upload of every large file on every re-import; holding it in memory
 *   until the answer would break the memory bound. The writer of the
 *   second read is opened with the first read's digest (`expectDigest`):
 *   a file edited in between fails the import, naming it, and nothing is
 *   stored for it.
 *
 * Either way a store keeps a chunk it holds already as it is (lmdb without
 * even a write transaction), so an edited large file stores only its changed
 * chunks; its bytes are all sent to the writer (over gRPC: to the server).
 *
 * Every write is `syncLater` when the service has a `sync()`: finish()
 * makes them all durable with that one call, before the importer commits a
 * directory.
 *
 * Memory: the bytes of small files waiting or being written are at most
 * MAX_BUFFERED_BYTES; add() waits for room beyond that (which holds the
 * importer's file jobs, so the walk slows down rather than grows).
 * A digest being written is not sent again by a concurrent batch; a digest
 * twice in one batch is sent once.
 */
import pLimit from "p-limit";
import { BlobDigestMismatchError, type BlobService, type BlobWriter, type Digest } from "@castore-ts/core";
import { digestKey } from "@castore-ts/core/internal";

export interface BlobUploadCounts {
  /** Blobs written to the store, and their bytes. */
  uploaded: number;
  uploadedBytes: number;
  /** Files whose blob the store had already (or that this import had just sent), and their bytes. */
  skipped: number;
  skippedBytes: number;
}

export interface BlobUploaderOptions {
  /** Blobs written at once (default 4). */
  concurrency?: number;
  /** Allow `deferring` (the caller asks the store about directories first, top down: spec §3.5). */
  deferWhenAllPresent?: boolean;
  signal?: AbortSignal;
  onProgress?(): void;
}

const BATCH_FILES = 256;
const BATCH_BYTES = 16 * 1024 * 1024;
const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

/** A file whose blob was not asked about when it was hashed (BlobUploader.deferring). */
export interface Deferred {
  digest: Digest;
  size: number;
  shown: () => string;
  /** Streams the file (read again) into a writer. */
  write: (writer: BlobWriter) => Promise<void>;
}

interface Buffered {
  digest: Digest;
  /** The digest as a map key (digestKey: cheaper to make than its hex). */
  key: string;
  bytes: Uint8Array;
  /** The file's path, for messages (computed only for one). */
  shown: () => string;
}

/** The store answered a digest other than the one the import computed: the file changed, or the store is wrong. */
export class BlobMismatchError extends Error {}

function mismatch(shown: string, stored: Digest, storedSize: number, hashed: Digest, size: number): BlobMismatchError {
  return new BlobMismatchError(
    `${shown}: stored as blob ${stored.hex} (${storedSize} bytes), but it hashed to ${hashed.hex} ` +
      `(${size} bytes) when read first: did it change during the import?`,
  );
}

/** A file read again to store it that no longer hashes as when read first: the writer stored nothing (expectDigest). */
function changed(shown: string, refused: BlobDigestMismatchError, size: number): BlobMismatchError {
  return new BlobMismatchError(
    `${shown}: read again to store it, it hashes to ${refused.actual.hex} (${refused.size} bytes), but it hashed to ` +
      `${refused.expected.hex} (${size} bytes) when read first: did it change during the import? Nothing was stored for it`,
    { cause: refused },
  );
}

export class BlobUploader {
  readonly counts: BlobUploadCounts = { uploaded: 0, uploadedBytes: 0, skipped: 0, skippedBytes: 0 };
  private batch: Buffered[] = [];
  private batchBytes = 0;
  /** Bytes of small files held: in the batch, or being asked about or written. */
  private bufferedBytes = 0;
  private readonly limit: ReturnType<typeof pLimit>;
  /** Digests being written now (by digestKey): another file with the same contents waits for that write instead. */
  private readonly writing = new Map<string, Promise<void>>();
  private readonly work = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  private roomWaiters: (() => void)[] = [];
  /** Whether the store has answered a `has`, and whether any answer was "missing" (see `deferring`). */
  private answered = false;
  private sawMissing = false;
  /**
   * Writes resolve before they are durable only when the service has a
   * sync() for finish() to call: a service without one (a wrapper that
   * passes options to another service, say) gets durable writes.
   */
  private readonly syncLater: boolean;

  constructor(
    private readonly blobs: BlobService,
    private readonly opts: BlobUploaderOptions = {},
  ) {
    this.limit = pLimit(opts.concurrency ?? 4);
    this.syncLater = typeof blobs.sync === "function";
  }

  /**
   * Whether the caller should stop asking about each file and defer it
   * (`addDeferred` later, for the files of directories the store lacks):
   * with `deferWhenAllPresent`, once the store has answered and every blob
   * asked about so far was stored, as on a re-import of an unchanged tree.
   * Then the questions need not carry every file's digest (spec §3.5).
   */
  get deferring(): boolean {
    return this.opts.deferWhenAllPresent === true && this.answered && !this.sawMissing;
  }

  private noteAnswer(present: readonly boolean[]): void {
    this.answered = true;
    if (present.includes(false)) this.sawMissing = true;
  }

  /** A file not asked about (`deferring`) whose directory the store holds: counted as already stored. */
  skipKnown(size: number): void {
    this.skip(size);
  }

  /**
   * Files deferred earlier, now known to be needed: asked about in batches
   * (one `has` per BATCH_FILES), and each missing one written by reading it
   * again (`write`). finish() then makes them durable.
   */
  addDeferred(files: readonly Deferred[]): void {
    for (let i = 0; i < files.length; i += BATCH_FILES) {
      const batch = files.slice(i, i + BATCH_FILES);
      this.track(
        (async () => {
          const present = await this.blobs.has(
            batch.map((f) => f.digest),
            { signal: this.opts.signal },
          );
          await Promise.all(
            batch.map((f, j) => (present[j] ? this.skip(f.size) : this.writeOnce(f.digest, f.size, f.shown, f.write))),
          );
        })(),
      );
    }
  }

  /**
   * A small file read whole: batched, then written if the store lacks it.
   * Takes it at once (undefined) while few enough bytes are held, else
   * answers a promise that resolves once it was taken. Throws (or rejects)
   * once a write failed.
   */
  addBuffered(digest: Digest, bytes: Uint8Array, shown: () => string): Promise<void> | undefined {
    this.throwIfFailed();
    if (this.bufferedBytes > 0 && this.bufferedBytes + bytes.length > MAX_BUFFERED_BYTES)
      return this.addBufferedWhenRoom(digest, bytes, shown);
    this.take(digest, bytes, shown);
    return undefined;
  }

  private async addBufferedWhenRoom(digest: Digest, bytes: Uint8Array, shown: () => string): Promise<void> {
    while (this.bufferedBytes > 0 && this.bufferedBytes + bytes.length > MAX_BUFFERED_BYTES) {
      this.flush(); // what is held must be able to drain
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
      this.throwIfFailed();
    }
    this.take(digest, bytes, shown);
  }

  private take(digest: Digest, bytes: Uint8Array, shown: () => string): void {
    this.batch.push({ digest, key: digestKey(digest.bytes), bytes, shown });
    this.batchBytes += bytes.length;
    this.bufferedBytes += bytes.length;
    if (this.batch.length >= BATCH_FILES || this.batchBytes >= BATCH_BYTES) this.flush();
  }

  /**
   * A large file already hashed: asks the store about its digest, and when it
   * is missing calls `write` to stream the file into a writer (a second read).
   * Resolves once the blob is stored or known present.
   */
  async addLarge(
    digest: Digest,
    size: number,
    shown: () => string,
    write: (writer: BlobWriter) => Promise<void>,
  ): Promise<void> {
    this.throwIfFailed();
    const answer = await this.blobs.has([digest], { signal: this.opts.signal });
    this.noteAnswer(answer);
    if (answer[0]) return this.skip(size);
    await this.writeOnce(digest, size, shown, write);
  }

  /**
   * Writes what is still batched, waits for every write, then makes them all
   * durable with one sync of the service (every write was `syncLater`):
   * once this resolves, directories naming these blobs may be committed.
   * Throws the first failure.
   */
  async finish(): Promise<BlobUploadCounts> {
    this.flush();
    while (this.work.size > 0) await Promise.all(this.work);
    this.throwIfFailed();
    await this.blobs.sync?.({ signal: this.opts.signal });
    return this.counts;
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
    this.opts.signal?.throwIfAborted();
  }

  private skip(bytes: number): void {
    this.counts.skipped++;
    this.counts.skippedBytes += bytes;
    this.opts.onProgress?.();
  }

  private track(p: Promise<void>): void {
    const tracked = p.then(
      () => void this.work.delete(tracked),
      (error: unknown) => {
        this.work.delete(tracked);
        this.failure ??= { error };
        this.wakeAll(); // waiters see the failure
      },
    );
    this.work.add(tracked);
  }

  private release(bytes: number): void {
    this.bufferedBytes -= bytes;
    this.wakeAll();
  }

  private wakeAll(): void {
    const waiters = this.roomWaiters;
    this.roomWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Sends the current batch's `has`, then writes its missing blobs (in the background; finish() waits). */
  private flush(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    const held = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    this.track(
      (async () => {
        try {
          // One entry per distinct digest: a file whose twin is earlier in the batch costs nothing more.
          const distinct = new Map<string, Buffered>();
          for (const file of batch) {
            if (distinct.has(file.key)) this.skip(file.bytes.length);
            else distinct.set(file.key, file);
          }
          const files = [...distinct.values()];
          const present = await this.blobs.has(
            files.map((f) => f.digest),
            { signal: this.opts.signal },
          );
          this.noteAnswer(present);
          const missing: Buffered[] = [];
          files.forEach((file, i) => {
            if (present[i]) this.skip(file.bytes.length);
            else missing.push(file);
          });
          await this.writeBuffered(missing);
        } finally {
          this.release(held);
        }
      })(),
    );
  }

  /**
   * Writes the missing blobs of a batch: all in one putMany (one store
   * transaction for lmdb) where the service has it, else a writer each. A
   * digest being written already by another batch is waited for and counted
   * as a skip.
   */
  private async writeBuffered(files: Buffered[]): Promise<void> {
    const putMany = this.blobs.putMany?.bind(this.blobs);
    if (!putMany) {
      await Promise.all(
        files.map((file) =>
          this.writeOnce(file.digest, file.bytes.length, file.shown, (writer) => writer.write(file.bytes)),
        ),
      );
      return;
    }
    const others: Promise<void>[] = [];
    const mine: Buffered[] = [];
    for (const file of files) {
      const running = this.writing.get(file.key);
      if (running) others.push(running.then(() => this.skip(file.bytes.length)));
      else mine.push(file);
    }
    if (mine.length > 0) {
      const write = this.limit(async () => {
        this.throwIfFailed();
        const written = await putMany(
          mine.map((f) => f.bytes),
          // Hashed as they were read: the service need not hash them again.
          { signal: this.opts.signal, syncLater: this.syncLater, digests: mine.map((f) => f.digest) },
        );
        written.forEach((w, i) => {
          const file = mine[i]!;
          if (!w.digest.equals(file.digest))
            throw mismatch(file.shown(), w.digest, w.size, file.digest, file.bytes.length);
          this.counts.uploaded++;
          this.counts.uploadedBytes += w.size;
        });
        this.opts.onProgress?.();
      });
      for (const file of mine) this.writing.set(file.key, write);
      try {
        await write;
      } finally {
        for (const file of mine) if (this.writing.get(file.key) === write) this.writing.delete(file.key);
      }
    }
    await Promise.all(others);
  }

  /** Writes one blob unless the same digest is being written already (then waits for that one, and counts a skip). */
  private async writeOnce(
    digest: Digest,
    size: number,
    shown: () => string,
    fill: (writer: BlobWriter) => Promise<void>,
  ): Promise<void> {
    const key = digestKey(digest.bytes);
    const running = this.writing.get(key);
    if (running) {
      await running;
      return this.skip(size);
    }
    const write = this.limit(async () => {
      this.throwIfFailed();
      // The file is read again here (a large or deferred one): if it changed since it was hashed, the writer
      // stores nothing rather than a blob that no directory of this import names.
      const writer = this.blobs.openWriter({
        signal: this.opts.signal,
        syncLater: this.syncLater,
        expectDigest: digest,
      });
      try {
        await fill(writer);
        const written = await writer.close();
        // A service that ignores expectDigest (one outside castore) stored what it read: said all the same.
        if (!written.digest.equals(digest)) throw mismatch(shown(), written.digest, written.size, digest, size);
      } catch (e) {
        await writer.abort(e);
        throw e instanceof BlobDigestMismatchError ? changed(shown(), e, size) : e;
      }
      this.counts.uploaded++;
      this.counts.uploadedBytes += size;
      this.opts.onProgress?.();
    });
    this.writing.set(key, write);
    try {
      await write;
    } finally {
      this.writing.delete(key);
    }
  }
}
