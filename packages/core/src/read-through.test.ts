/**
 * cache://'s read-through on a miss (read-through.ts): far's closure reaches
 * the caller as far yields it, and near is filled only by a read that got
 * all of it.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { CacheDirectoryService } from "./cache.js";
import { directoryDigest } from "./canonical.js";
import type { Digest } from "./digest.js";
import { AbortError, CorruptionError } from "./errors.js";
import { type Directory, directorySize, makeDirectory, makeDirectoryNode, makeFileNode } from "./model.js";
import type { CallOptions, DirectoryPutter, DirectoryService, EncodedDirectory } from "./service.js";
import type { ClosureEntry } from "./closure.js";
import { StoreDirectoryService } from "./store-service.js";
import { MapStore, mapService } from "./test-memory-store.js";

/** A tree, leaves to root: a root holding `width` directories, each holding `width` leaves (distinct by a file). */
function tree(width: number): Directory[] {
  const leaf = (i: number, j: number) =>
    makeDirectory({ files: [makeFileNode(`f${i}-${j}`, new Uint8Array(32).fill(i * width + j), 1)] });
  const out: Directory[] = [];
  const middles: Directory[] = [];
  for (let i = 0; i < width; i++) {
    const leaves = Array.from({ length: width }, (_, j) => leaf(i, j));
    out.push(...leaves);
    const middle = makeDirectory({
      directories: leaves.map((l, j) => makeDirectoryNode(`l${j}`, directoryDigest(l), directorySize(l))),
    });
    out.push(middle);
    middles.push(middle);
  }
  out.push(
    makeDirectory({
      directories: middles.map((m, i) => makeDirectoryNode(`m${i}`, directoryDigest(m), directorySize(m))),
    }),
  );
  return out;
}

async function upload(service: DirectoryService, directories: Directory[]): Promise<Digest> {
  const putter = service.putMultipleStart();
  for (const d of directories) await putter.put(d);
  return putter.close();
}

const hexes = (ds: Directory[]) => ds.map((d) => directoryDigest(d).hex);

async function readAll(service: DirectoryService, root: Digest, opts?: CallOptions): Promise<Directory[]> {
  const out: Directory[] = [];
  for await (const d of service.getRecursive(root, opts)) out.push(d);
  return out;
}

/**
 * A far store that delegates to a real one and reports what its reads did:
 * how many directories it has yielded, whether the read was closed, and
 * optionally a failure after `failAfter` directories or a clean end after
 * `endAfter` (a store that loses part of a closure).
 */
class ObservedFar implements DirectoryService {
  yielded = 0;
  closedEarly = false;
  failAfter: number | undefined;
  endAfter: number | undefined;

  constructor(
    readonly inner: DirectoryService,
    /** Also offer getRecursiveEncoded (the inner one's, observed alike): the fill then takes far's checked bytes. */
    encoded = false,
  ) {
    if (encoded) this.getRecursiveEncoded = (root, opts) => this.observed(inner.getRecursiveEncoded!(root, opts));
  }

  getRecursiveEncoded?: (root: Digest, opts?: CallOptions) => AsyncIterable<EncodedDirectory>;

  get(digest: Digest, opts?: CallOptions) {
    return this.inner.get(digest, opts);
  }
  put(directory: Directory, opts?: CallOptions) {
    return this.inner.put(directory, opts);
  }
  putMultipleStart(opts?: CallOptions) {
    return this.inner.putMultipleStart(opts);
  }
  close() {
    return this.inner.close();
  }
  getRecursive(root: Digest, opts?: CallOptions): AsyncIterable<Directory> {
    return this.observed(this.inner.getRecursive(root, opts));
  }

  private async *observed<T>(stream: AsyncIterable<T>): AsyncGenerator<T> {
    let complete = false;
    try {
      for await (const d of stream) {
        if (this.yielded === this.failAfter) throw new Error("far's connection broke");
        if (this.yielded === this.endAfter) break;
        this.yielded++;
        yield d;
      }
      complete = true;
    } finally {
      if (!complete) this.closedEarly = true;
    }
  }
}

/** A store whose every upload fails at commit (a full disk). */
class FullStore extends MapStore {
  override async putClosure(): Promise<void> {
    throw new Error("no space left on device");
  }
}

/** A store whose commit is one step (DirectoryStore.unorderedClosures): its service takes checked closures. */
class AtomicMapStore extends MapStore {
  readonly unorderedClosures = true;
  /** The entries of each putClosure, in the order given. */
  readonly commits: ClosureEntry[][] = [];
  failCommits = false;
  override async putClosure(entries: ClosureEntry[]): Promise<void> {
    this.commits.push(entries);
    if (this.failCommits) throw new Error("no space left on device");
    return super.putClosure(entries);
  }
}

/** Whether the far of setUp() offers getRecursiveEncoded; set by each pass of the suite below. */
let farEncoded = false;

async function setUp(width = 4) {
  const farService = mapService();
  const directories = tree(width);
  const root = await upload(farService.service, directories);
  const far = new ObservedFar(farService.service, farEncoded);
  const near = mapService();
  const cache = new CacheDirectoryService(near.service, far);
  const expected = await readAll(farService.service, root);
  far.yielded = 0;
  return { directories, root, far, near, cache, expected };
}

describe.each([
  { farEncoded: false, far: "far with getRecursive only (the fill checks its stream)" },
  { farEncoded: true, far: "far with getRecursiveEncoded (the fill takes its checked bytes)" },
])("cache:// read-through on a miss, $far", (pass) => {
  beforeEach(() => {
    farEncoded = pass.farEncoded;
  });

  it("yields far's directories in far's order (root to leaves), then near holds the closure", async () => {
    const { directories, root, near, cache, expected } = await setUp();
    const got = await readAll(cache, root);
    expect(hexes(got)).toEqual(hexes(expected));
    expect(hexes(got)[0]).toBe(root.hex);
    expect([...near.store.map.keys()].sort()).toEqual(hexes(directories).sort());
    // The second read is near's alone.
    const reads = near.store.reads;
    expect(hexes(await readAll(cache, root))).toEqual(hexes(expected));
    expect(near.store.reads).toBeGreaterThan(reads);
  });

  it("reads far at the caller's pace: each directory reaches the caller before far is asked for the next", async () => {
    const { root, far, cache } = await setUp();
    let n = 0;
    for await (const _ of cache.getRecursive(root)) {
      n++;
      expect(far.yielded).toBe(n);
    }
    expect(n).toBe(21);
  });

  it("a read the caller stops early closes far's read and leaves near empty", async () => {
    const { root, far, near, cache, expected } = await setUp();
    let n = 0;
    for await (const _ of cache.getRecursive(root)) if (++n === 3) break;
    expect(far.closedEarly).toBe(true);
    expect(near.store.map.size).toBe(0);
    // A later full read fills near.
    expect(hexes(await readAll(cache, root))).toEqual(hexes(expected));
    expect(near.store.map.size).toBe(expected.length);
  });

  it("a read cancelled by its signal ends with AbortError and leaves near empty", async () => {
    const { root, near, cache } = await setUp();
    const controller = new AbortController();
    let n = 0;
    const reading = (async () => {
      for await (const _ of cache.getRecursive(root, { signal: controller.signal }))
        if (++n === 2) controller.abort(new Error("the caller gave up"));
    })();
    await expect(reading).rejects.toBeInstanceOf(AbortError);
    expect(n).toBe(2);
    expect(near.store.map.size).toBe(0);
  });

  it("far failing mid-read ends the caller's read with far's error, and near stays empty", async () => {
    const { root, far, near, cache } = await setUp();
    far.failAfter = 5;
    const got: Directory[] = [];
    const reading = (async () => {
      for await (const d of cache.getRecursive(root)) got.push(d);
    })();
    await expect(reading).rejects.toThrow("far's connection broke");
    expect(got).toHaveLength(5);
    expect(near.store.map.size).toBe(0);
  });

  it("far ending cleanly before the closure is whole is a CorruptionError, never a clean end, and near stays empty", async () => {
    const { root, far, near, cache } = await setUp();
    far.endAfter = 7;
    await expect(readAll(cache, root)).rejects.toBeInstanceOf(CorruptionError);
    expect(near.store.map.size).toBe(0);
  });

  it("near failing to store the closure does not fail the caller's read; the next read goes to far again", async () => {
    const farService = mapService();
    const directories = tree(3);
    const root = await upload(farService.service, directories);
    const far = new ObservedFar(farService.service, farEncoded);
    const nearStore = new FullStore();
    const cache = new CacheDirectoryService(new StoreDirectoryService(nearStore), far);
    const expected = await readAll(farService.service, root);
    far.yielded = 0;
    expect(hexes(await readAll(cache, root))).toEqual(hexes(expected));
    expect(nearStore.map.size).toBe(0);
    expect(far.yielded).toBe(expected.length);
    expect(hexes(await readAll(cache, root))).toEqual(hexes(expected));
    expect(far.yielded).toBe(2 * expected.length);
  });

  it("near refusing to even start an upload does not fail the caller's read", async () => {
    const { root, far, expected } = await setUp(2);
    const nearService = mapService().service;
    const near: DirectoryService = Object.assign(Object.create(nearService) as DirectoryService, {
      putMultipleStart(): DirectoryPutter {
        throw new Error("near is read-only");
      },
    });
    const cache = new CacheDirectoryService(near, far);
    expect(hexes(await readAll(cache, root))).toEqual(hexes(expected));
  });

  it("get of a miss reads the whole closure through, returns the root and fills near", async () => {
    const { directories, root, near, cache } = await setUp();
    const got = await cache.get(root);
    expect(got && directoryDigest(got).hex).toBe(root.hex);
    expect(near.store.map.size).toBe(directories.length);
  });

  it("an absent root: nothing from far, nothing in near", async () => {
    const { near, cache } = await setUp(2);
    const absent = directoryDigest(makeDirectory({ files: [makeFileNode("x", new Uint8Array(32), 1)] }));
    expect(await readAll(cache, absent)).toEqual([]);
    expect(await cache.get(absent)).toBeUndefined();
    expect(near.store.map.size).toBe(0);
  });

  describe("a near that takes checked closures (putCheckedClosure)", () => {
    async function setUpAtomic() {
      const { root, far, expected } = await setUp();
      const nearStore = new AtomicMapStore();
      const nearService = new StoreDirectoryService(nearStore);
      let uploads = 0;
      const near: DirectoryService = Object.assign(Object.create(nearService) as DirectoryService, {
        putMultipleStart(): DirectoryPutter {
          uploads++;
          return nearService.putMultipleStart();
        },
      });
      const cache = new CacheDirectoryService(near, far);
      return { root, far, expected, nearStore, nearService, cache, uploads: () => uploads };
    }

    it("is offered by a service only over a store that commits in one step", () => {
      expect(new StoreDirectoryService(new AtomicMapStore()).putCheckedClosure).toBeTypeOf("function");
      expect(new StoreDirectoryService(new MapStore()).putCheckedClosure).toBeUndefined();
    });

    it("gets the closure as read, root to leaves, in one commit and no upload; the next read is near's, re-hashed", async () => {
      const { root, expected, nearStore, nearService, cache, uploads } = await setUpAtomic();
      expect(hexes(await readAll(cache, root))).toEqual(hexes(expected));
      expect(uploads()).toBe(0);
      expect(nearStore.commits).toHaveLength(1);
      expect(nearStore.commits[0].map((e) => e.digest.hex)).toEqual(hexes(expected));
      // Each entry's bytes and decoded directory are those of its digest.
      for (const entry of nearStore.commits[0]) expect(directoryDigest(entry.directory).hex).toBe(entry.digest.hex);
      // near's own read re-hashes what it stored: a corrupted entry would fail here.
      expect(hexes(await readAll(nearService, root))).toEqual(hexes(expected));
      const reads = nearStore.reads;
      expect(hexes(await readAll(cache, root))).toEqual(hexes(expected));
      expect(nearStore.reads).toBeGreaterThan(reads);
    });

    it("keeps the bytes it checked, not the caller's directories: a caller changing them does not change near", async () => {
      const { root, expected, nearService, cache } = await setUpAtomic();
      for await (const d of cache.getRecursive(root)) {
        d.files.splice(0);
        d.directories.splice(0);
      }
      expect(hexes(await readAll(nearService, root))).toEqual(hexes(expected));
    });

    it("stores nothing of a read cut short or of far's corrupt stream", async () => {
      const { root, far, nearStore, cache } = await setUpAtomic();
      let n = 0;
      for await (const _ of cache.getRecursive(root)) if (++n === 3) break;
      far.endAfter = 7;
      await expect(readAll(cache, root)).rejects.toBeInstanceOf(CorruptionError);
      expect(nearStore.commits).toHaveLength(0);
      expect(nearStore.map.size).toBe(0);
    });

    it("near failing to store does not fail the caller's read; the next read goes to far again", async () => {
      const { root, far, expected, nearStore, cache } = await setUpAtomic();
      nearStore.failCommits = true;
      expect(hexes(await readAll(cache, root))).toEqual(hexes(expected));
      expect(nearStore.map.size).toBe(0);
      nearStore.failCommits = false;
      expect(hexes(await readAll(cache, root))).toEqual(hexes(expected));
      expect(far.yielded).toBe(2 * expected.length);
      expect(nearStore.map.size).toBe(expected.length);
    });
  });
});

describe("cache:// read-through over a far whose getRecursiveEncoded is core's walk, passed on changed", () => {
  /** A far that yields what `change` makes of its store's own encoded walk. */
  async function setUpChanged(change: (walk: EncodedDirectory[]) => EncodedDirectory[]) {
    const farService = mapService();
    const root = await upload(farService.service, tree(3));
    const expected = await readAll(farService.service, root);
    const far: DirectoryService = Object.assign(Object.create(farService.service) as DirectoryService, {
      async *getRecursiveEncoded(r: Digest, opts?: CallOptions) {
        const walked: EncodedDirectory[] = [];
        for await (const e of farService.service.getRecursiveEncoded(r, opts)) walked.push(e);
        yield* change(walked);
      },
    });
    const near = mapService();
    return { root, expected, near, cache: new CacheDirectoryService(near.service, far) };
  }

  it("entries copied into objects of the far's own are checked here, and fill near when whole", async () => {
    const { root, expected, near, cache } = await setUpChanged((walk) => walk.map((e) => ({ ...e })));
    expect(hexes(await readAll(cache, root))).toEqual(hexes(expected));
    expect(near.store.map.size).toBe(expected.length);
  });

  it("a walk's entries with one left out in the middle: the rest is checked here, and the gap is corruption", async () => {
    const { root, near, cache } = await setUpChanged((walk) => [...walk.slice(0, 4), ...walk.slice(5)]);
    await expect(readAll(cache, root)).rejects.toBeInstanceOf(CorruptionError);
    expect(near.store.map.size).toBe(0);
  });

  it("a walk's entries cut short, ending cleanly: corruption, near stays empty", async () => {
    const { root, near, cache } = await setUpChanged((walk) => walk.slice(0, walk.length - 1));
    await expect(readAll(cache, root)).rejects.toThrow(/premature end of stream/);
    expect(near.store.map.size).toBe(0);
  });

  it("a whole walk and then one more directory: corruption, near stays empty", async () => {
    const { root, near, cache } = await setUpChanged((walk) => [...walk, walk[walk.length - 1]]);
    await expect(readAll(cache, root)).rejects.toThrow(/sent twice/);
    expect(near.store.map.size).toBe(0);
  });
});
