/**
 * TEST ONLY: deliberately broken backends, each with one realistic bug, to
 * prove the suite fails them (and to let other packages show that, e.g. a
 * served broken backend failing `castore conformance`). Never use one to
 * store anything. Exported as `@castore-ts/conformance/broken`.
 */
import {
  type CallOptions,
  type ClosureEntry,
  Digest,
  type Directory,
  type DirectoryPutter,
  type DirectoryStore,
  StoreDirectoryService,
  ClosureError,
  ClosureValidator,
  decodeDirectory,
  encodeDirectory,
  type EncodedDirectory,
  makeDirectory,
  MapRefStore,
  RefService,
  throwIfAborted,
  validateDirectory,
} from "@castore-ts/core";
import {
  LARGE_BLOBS_ELSEWHERE,
  MapBlobService,
  OtherBytesBlobService,
  TruncatingBlobService,
  WriteBehindBlobService,
  WrongDigestBlobService,
} from "./broken-blobs.js";
import type { ConformanceInstance, ConformanceTarget } from "./types.js";

/** Why the broken backends skip gc.*: broken collectors run over a real store (brokenCollectors). */
const COLLECTORS_ELSEWHERE =
  "these backends' bugs are in directories and blobs; the broken collectors run over the memory store's tests";

/** Why the broken backends skip partial uploads: their bugs are elsewhere, and their Map store takes whole closures only. */
const PARTIAL_ELSEWHERE =
  "these backends' Map store takes whole closures only; partial uploads run over the real stores";

/** The correct Map-backed blob store and service the broken backends build on, for other packages' tests. */
export { MapBlobService, MapBlobStore } from "./broken-blobs.js";

export interface BrokenBackend extends ConformanceTarget {
  /** The bug, in one line. */
  bug: string;
}

/** A plain Map store: correct on its own; the broken services below misuse or bend it. */
class MapStore implements DirectoryStore {
  readonly bytes = new Map<string, Uint8Array>();
  constructor(readonly backend: string) {}

  /** The map key of a digest. */
  protected key(digest: Digest): string {
    return digest.hex;
  }

  async getMany(digests: Digest[], signal?: AbortSignal): Promise<(Uint8Array | undefined)[]> {
    throwIfAborted(signal);
    return digests.map((d) => this.bytes.get(this.key(d)));
  }

  async putClosure(entries: ClosureEntry[], signal?: AbortSignal): Promise<void> {
    throwIfAborted(signal);
    for (const e of entries) this.store(e.digest, e.bytes);
  }

  store(digest: Digest, bytes: Uint8Array): void {
    if (!this.bytes.has(this.key(digest))) this.bytes.set(this.key(digest), bytes.slice());
  }

  corrupt(digest: Digest, bytes: Uint8Array): void {
    this.bytes.set(this.key(digest), bytes.slice());
  }

  /** Correct, like the rest of this store: replaces stored bytes, adds nothing. */
  async repair(entries: ClosureEntry[]): Promise<Digest[]> {
    const replaced = entries.filter((e) => this.bytes.has(this.key(e.digest)));
    for (const e of replaced) this.bytes.set(this.key(e.digest), e.bytes.slice());
    return replaced.map((e) => e.digest);
  }

  async *listDigests(): AsyncIterable<Digest> {
    for (const key of [...this.bytes.keys()]) yield Digest.parse(key);
  }

  async close(): Promise<void> {}
}

/** Keys only the first 2 bytes of each digest: different directories collide in large trees. */
class TruncatedKeyStore extends MapStore {
  protected override key(digest: Digest): string {
    return digest.hex.slice(0, 4);
  }
}

/** Passes every name and symlink target through a JS string on the way in (lossy for non-UTF-8 bytes). */
class StringNameStore extends MapStore {
  override async putClosure(entries: ClosureEntry[], signal?: AbortSignal): Promise<void> {
    const decoder = new TextDecoder();
    const encoder = new TextEncoder();
    const viaString = (b: Uint8Array) => encoder.encode(decoder.decode(b));
    const mangled = entries.map((e) => {
      const d = e.directory;
      const copy = makeDirectory({
        directories: d.directories.map((n) => ({ ...n, name: viaString(n.name) })),
        files: d.files.map((n) => ({ ...n, name: viaString(n.name) })),
        symlinks: d.symlinks.map((n) => ({ ...n, name: viaString(n.name), target: viaString(n.target) })),
      });
      return { digest: e.digest, bytes: encodeDirectory(copy), directory: copy };
    });
    await super.putClosure(mangled, signal);
  }
}

/** Directories and blobs; the blob layer is the correct one unless the bug is in blobs. */
function instance(
  service: StoreDirectoryService & { store: MapStore },
  blobs: MapBlobService = new MapBlobService(),
): ConformanceInstance {
  return {
    service,
    corrupt: async (digest, bytes) => service.store.corrupt(digest, bytes),
    blobs,
    corruptChunk: async (digest, bytes) => blobs.store.corruptChunk(digest, bytes),
    // Correct refs over the (possibly broken) layers: a broken layer shows through them too.
    refs: new RefService(new MapRefStore(), service, blobs),
  };
}

class MapService extends StoreDirectoryService {
  declare readonly store: MapStore;
  constructor(store: MapStore) {
    super(store);
  }

  /**
   * Made from getRecursive, where most of these bugs live: a gRPC server
   * prefers this stream, and must show them too.
   */
  override async *getRecursiveEncoded(root: Digest, opts?: CallOptions): AsyncIterable<EncodedDirectory> {
    for await (const directory of this.getRecursive(root, opts)) {
      const bytes = encodeDirectory(directory);
      yield { directory, bytes, digest: Digest.of(bytes) };
    }
  }

  /** No: several of these override putMultipleStart without honouring `partial` (PARTIAL_ELSEWHERE). */
  override async partialUploads(): Promise<boolean> {
    return false;
  }
}

/** Yields what the correct stream yields, but only once it has all of it; `reorder` may rearrange it. */
async function* drainThenYield(
  stream: AsyncIterable<Directory>,
  reorder: (all: Directory[]) => Directory[],
  signal?: AbortSignal,
): AsyncGenerator<Directory> {
  const all: Directory[] = [];
  for await (const d of stream) all.push(d);
  for (const d of reorder(all)) {
    throwIfAborted(signal);
    yield d;
  }
}

/** getRecursive yields the correct stream backwards: leaves first, the root last. */
class ReversedRecursiveService extends MapService {
  override getRecursive(root: Digest, opts?: CallOptions): AsyncIterable<Directory> {
    return drainThenYield(super.getRecursive(root, opts), (all) => all.reverse(), opts?.signal);
  }
}

/** getRecursive reads everything before yielding the first directory (right order, unbounded memory). */
class BufferingRecursiveService extends MapService {
  override getRecursive(root: Digest, opts?: CallOptions): AsyncIterable<Directory> {
    return drainThenYield(super.getRecursive(root, opts), (all) => all, opts?.signal);
  }
}

/** Reads without re-hashing or re-validating: whatever bytes are stored come back decoded. */
class TrustingService extends MapService {
  private async read(digest: Digest): Promise<Directory | undefined> {
    const [bytes] = await this.store.getMany([digest]);
    return bytes && decodeDirectory(bytes);
  }

  override async get(digest: Digest, opts?: CallOptions): Promise<Directory | undefined> {
    throwIfAborted(opts?.signal);
    return this.read(digest);
  }

  override async *getRecursive(root: Digest, opts?: CallOptions): AsyncGenerator<Directory> {
    const seen = new Set([root.hex]);
    const queue = [root];
    for (let i = 0; i < queue.length; i++) {
      throwIfAborted(opts?.signal);
      const d = await this.read(queue[i]);
      if (!d) {
        if (i === 0) return;
        throw new Error(`directory ${queue[i]} missing`);
      }
      for (const child of d.directories) {
        const digest = Digest.fromBytes(child.digest);
        if (!seen.has(digest.hex)) {
          seen.add(digest.hex);
          queue.push(digest);
        }
      }
      yield d;
    }
  }
}

/** getRecursive walks depth first with no record of what it yielded: shared subtrees come out once per reference. */
class RepeatingRecursiveService extends MapService {
  override async *getRecursive(root: Digest, opts?: CallOptions): AsyncGenerator<Directory> {
    const stack = [root];
    let first = true;
    while (stack.length > 0) {
      throwIfAborted(opts?.signal);
      const digest = stack.pop()!;
      const d = await this.get(digest);
      if (!d) {
        if (first) return;
        throw new Error(`directory ${digest} missing`);
      }
      first = false;
      yield d;
      for (const child of [...d.directories].reverse()) stack.push(Digest.fromBytes(child.digest));
    }
  }
}

/** Drops every AbortSignal on the floor. */
class SignalIgnoringService extends MapService {
  override get(digest: Digest): Promise<Directory | undefined> {
    return super.get(digest);
  }
  override getRecursive(root: Digest): AsyncIterable<Directory> {
    return super.getRecursive(root);
  }
  override putMultipleStart(): DirectoryPutter {
    return super.putMultipleStart();
  }
}

/** A putter that validates each directory alone and stores the upload at close(): no closure checks at all. */
class UncheckedPutter implements DirectoryPutter {
  private readonly entries: ClosureEntry[] = [];
  private done = false;
  constructor(
    private readonly store: MapStore,
    private readonly signal?: AbortSignal,
  ) {}

  async put(directory: Directory): Promise<void> {
    if (this.done) throw new ClosureError("upload already closed");
    validateDirectory(directory);
    const bytes = encodeDirectory(directory);
    this.entries.push({ digest: Digest.of(bytes), bytes, directory });
  }

  /** The running close(), until it settles. */
  private closing: Promise<Digest> | undefined;

  close(): Promise<Digest> {
    if (this.done) return Promise.reject(new ClosureError("upload already closed"));
    this.done = true;
    const closing = (async () => {
      if (this.entries.length === 0) throw new ClosureError("empty upload");
      await this.store.putClosure(this.entries, this.signal);
      return this.entries[this.entries.length - 1].digest;
    })();
    this.closing = closing;
    const over = () => {
      this.closing = undefined;
    };
    closing.then(over, over);
    return closing;
  }

  /** Keeps DirectoryPutter's closing rules (its one bug is the missing closure checks). */
  async abort(): Promise<void> {
    this.done = true;
    const closing = this.closing;
    if (!closing) return;
    const root = await closing.catch(() => undefined);
    if (root) throw new ClosureError(`abort() came too late: the upload was already committed as ${root}`);
  }
}

class DanglingService extends MapService {
  override putMultipleStart(opts?: CallOptions): DirectoryPutter {
    return new UncheckedPutter(this.store, opts?.signal);
  }
}

/** A putter that checks the closure as it goes but stores each directory at put(): abort leaves them behind. */
class EagerPutter implements DirectoryPutter {
  private readonly validator = new ClosureValidator();
  private closed = false;
  constructor(
    private readonly store: MapStore,
    private readonly signal?: AbortSignal,
  ) {}

  async put(directory: Directory): Promise<void> {
    if (this.closed) throw new ClosureError("upload already closed");
    const bytes = encodeDirectory(directory);
    if (this.validator.add(directory, bytes)) this.store.store(Digest.of(bytes), bytes);
  }

  async close(): Promise<Digest> {
    if (this.closed) throw new ClosureError("upload already closed");
    throwIfAborted(this.signal);
    this.closed = true;
    return this.validator.finish().root;
  }

  async abort(): Promise<void> {
    this.closed = true;
  }
}

class EagerService extends MapService {
  override putMultipleStart(opts?: CallOptions): DirectoryPutter {
    return new EagerPutter(this.store, opts?.signal);
  }
}

/**
 * No closing state (core's ClosurePutter before it had one): close() waits a
 * turn for its engine and then checks and stores whatever was put by then;
 * meanwhile put() and close() are still accepted, and abort() resolves at once
 * while the commit goes on.
 */
class NoClosingStatePutter implements DirectoryPutter {
  private readonly validator = new ClosureValidator();
  private over = false;
  constructor(
    private readonly store: MapStore,
    private readonly signal?: AbortSignal,
  ) {}

  async put(directory: Directory): Promise<void> {
    if (this.over) throw new ClosureError("upload already closed");
    this.validator.add(directory);
  }

  async close(): Promise<Digest> {
    if (this.over) throw new ClosureError("upload already closed");
    throwIfAborted(this.signal);
    await new Promise((resolve) => setImmediate(resolve));
    const closure = this.validator.finish();
    await this.store.putClosure(closure.entries, this.signal);
    this.over = true;
    return closure.root;
  }

  async abort(): Promise<void> {
    this.over = true;
  }
}

class NoClosingStateService extends MapService {
  override putMultipleStart(opts?: CallOptions): DirectoryPutter {
    return new NoClosingStatePutter(this.store, opts?.signal);
  }
}

/** A putter that keeps the caller's directories and checks and encodes them only at close(). */
class LateEncodingPutter implements DirectoryPutter {
  private readonly directories: Directory[] = [];
  private done = false;
  constructor(private readonly open: () => DirectoryPutter) {}

  async put(directory: Directory): Promise<void> {
    if (this.done) throw new ClosureError("upload already closed");
    this.directories.push(directory);
  }

  async close(): Promise<Digest> {
    if (this.done) throw new ClosureError("upload already closed");
    this.done = true;
    const putter = this.open();
    try {
      for (const d of this.directories) await putter.put(d);
    } catch (e) {
      await putter.abort(e);
      throw e;
    }
    return putter.close();
  }

  async abort(): Promise<void> {
    this.done = true;
  }
}

class LateEncodingService extends MapService {
  override putMultipleStart(opts?: CallOptions): DirectoryPutter {
    return new LateEncodingPutter(() => super.putMultipleStart(opts));
  }
}

function broken(name: string, bug: string, make: () => MapService): BrokenBackend {
  return {
    name: `broken:${name}`,
    bug,
    factory: async () => instance(make()),
    capabilities: { largeBlobs: LARGE_BLOBS_ELSEWHERE, gc: COLLECTORS_ELSEWHERE, partialUpload: PARTIAL_ELSEWHERE },
  };
}

/** A backend whose directories are correct and whose blobs have the bug. */
function brokenBlobs(name: string, bug: string, makeBlobs: () => MapBlobService): BrokenBackend {
  return {
    name: `broken:${name}`,
    bug,
    factory: async () => instance(new MapService(new MapStore(name)), makeBlobs()),
    capabilities: { largeBlobs: LARGE_BLOBS_ELSEWHERE, gc: COLLECTORS_ELSEWHERE, partialUpload: PARTIAL_ELSEWHERE },
  };
}

/** The broken backends, by name. Each factory gives a fresh, empty store. */
export const brokenBackends = {
  childrenBeforeParents: broken(
    "children-before-parents",
    "getRecursive yields leaves first, the root last",
    () => new ReversedRecursiveService(new MapStore("children-before-parents")),
  ),
  bufferingRecursive: broken(
    "buffering-recursive",
    "getRecursive reads the whole tree before yielding anything",
    () => new BufferingRecursiveService(new MapStore("buffering-recursive")),
  ),
  repeatingRecursive: broken(
    "repeating-recursive",
    "getRecursive yields a shared subtree once per reference",
    () => new RepeatingRecursiveService(new MapStore("repeating-recursive")),
  ),
  danglingUploads: broken(
    "dangling-uploads",
    "uploads are stored without closure checks (missing children, wrong sizes, several roots)",
    () => new DanglingService(new MapStore("dangling-uploads")),
  ),
  trustsStoredBytes: broken(
    "trusts-stored-bytes",
    "reads return stored bytes without re-hashing or re-validating",
    () => new TrustingService(new MapStore("trusts-stored-bytes")),
  ),
  truncatedKeys: broken(
    "truncated-keys",
    "stores directories under the first 2 bytes of their digest, so large trees collide",
    () => new MapService(new TruncatedKeyStore("truncated-keys")),
  ),
  stringNames: broken(
    "string-names",
    "passes names and symlink targets through JS strings, mangling bytes that are not UTF-8",
    () => new MapService(new StringNameStore("string-names")),
  ),
  ignoresAbort: broken(
    "ignores-abort",
    "ignores every AbortSignal",
    () => new SignalIgnoringService(new MapStore("ignores-abort")),
  ),
  lateEncoding: broken(
    "late-encoding",
    "keeps the caller's directory objects until close(), so changes made after put() are stored",
    () => new LateEncodingService(new MapStore("late-encoding")),
  ),
  storesBeforeClose: broken(
    "stores-before-close",
    "stores each directory as it is put, so aborted uploads leave directories behind",
    () => new EagerService(new MapStore("stores-before-close")),
  ),
  noClosingState: broken(
    "no-closing-state",
    "while close() runs, put() and a second close() are accepted, and abort() resolves while the commit goes on",
    () => new NoClosingStateService(new MapStore("no-closing-state")),
  ),
  blobOtherBytes: brokenBlobs(
    "blob-other-bytes",
    "blob reads return other bytes than were stored (one bit flipped)",
    () => new OtherBytesBlobService(),
  ),
  blobTruncates: brokenBlobs(
    "blob-truncates",
    "blob reads end cleanly after the first piece",
    () => new TruncatingBlobService(),
  ),
  blobWrongDigest: brokenBlobs(
    "blob-wrong-digest",
    "stores a blob under the digest of all but its last write",
    () => new WrongDigestBlobService(),
  ),
  blobWriteBehind: brokenBlobs(
    "blob-write-behind",
    "acknowledges chunk writes before storing them, so a written blob is missing (one chunk) or visible before its chunks",
    () => new WriteBehindBlobService(),
  ),
} satisfies Record<string, BrokenBackend>;
export { type BrokenCollector, brokenCollectors } from "./broken-collectors.js";
