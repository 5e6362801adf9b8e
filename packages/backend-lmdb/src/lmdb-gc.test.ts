import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ChunkedBlobService,
  decodeDirectory,
  Digest,
  directoryDigest,
  directorySize,
  InProcessCollector,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  openGarbageCollector,
  openRefService,
  RefService,
  type Directory,
  type ObjectKind,
} from "@castore-ts/core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { LmdbBlobStore, LmdbDirectoryService, LmdbRefStore, type LmdbGcParts } from "./index.js";

/** Small chunks, so that a few KiB make a blob of several chunks. */
const CHUNKING = { minSize: 64, avgSize: 256, maxSize: 1024 };
const T0 = Date.UTC(2026, 0, 1);
const MINUTE = 60_000;

let dir: string;
let path: string;
const opened: { close(): Promise<void> }[] = [];

/** Every layer of the store at `path`, as `lmdb://` opens them, with refs protected and a collector. */
async function openStore() {
  const directories = await LmdbDirectoryService.open(path);
  const blobStore = LmdbBlobStore.open(path);
  const blobs = new ChunkedBlobService(blobStore, { chunking: CHUNKING });
  const refStore = LmdbRefStore.open(path);
  const parts: LmdbGcParts = refStore.parts;
  const refs = new RefService(refStore, directories, blobs);
  const gc = new InProcessCollector({
    objects: parts.objects,
    directories: parts.directories,
    blobs: parts.blobs,
    refs: refStore,
  });
  opened.push(directories, blobs, refs);
  return { directories, blobStore, blobs, parts, refs, gc };
}
type Store = Awaited<ReturnType<typeof openStore>>;

async function writeBlob(store: Store, bytes: Uint8Array): Promise<Digest> {
  const writer = store.blobs.openWriter();
  await writer.write(bytes);
  return (await writer.close()).digest;
}

async function readBlob(store: Store, digest: Digest): Promise<Buffer> {
  const stream = await store.blobs.read(digest);
  expect(stream, `blob ${digest.hex}`).toBeDefined();
  const pieces: Uint8Array[] = [];
  for await (const piece of stream!) pieces.push(piece);
  return Buffer.concat(pieces);
}

async function putTree(store: Store, leavesToRoot: Directory[]): Promise<Digest> {
  const putter = store.directories.putMultipleStart();
  for (const d of leavesToRoot) await putter.put(d);
  return putter.close();
}

/** What one tree is made of: its directories, blobs and chunks, by hex digest. */
interface Tree {
  root: Digest;
  directories: Digest[];
  blobs: Map<string, Buffer>;
  /** The blobs stored with a manifest (of several chunks; a blob of one chunk is that chunk alone), by hex digest. */
  manifested: Set<string>;
}

/**
 * A tree of three directories (root, "sub", and `shared` if given) and two
 * file blobs of its own: one of several chunks, one of a single chunk.
 */
async function uploadTree(store: Store, shared?: { directory: Directory; blob: [Digest, Buffer] }): Promise<Tree> {
  const big = randomBytes(6000);
  const small = randomBytes(40);
  const bigDigest = await writeBlob(store, big);
  const smallDigest = await writeBlob(store, small);
  const sub = makeDirectory({ files: [makeFileNode("small", smallDigest, small.length)] });
  const subdirs = [makeDirectoryNode("sub", directoryDigest(sub), directorySize(sub))];
  if (shared)
    subdirs.unshift(makeDirectoryNode("shared", directoryDigest(shared.directory), directorySize(shared.directory)));
  const files = [makeFileNode("big", bigDigest, big.length)];
  if (shared) files.push(makeFileNode("shared-file", shared.blob[0], shared.blob[1].length));
  const root = makeDirectory({ directories: subdirs, files });
  const leaves = shared ? [shared.directory, sub, root] : [sub, root];
  const rootDigest = await putTree(store, leaves);
  const blobs = new Map<string, Buffer>([
    [bigDigest.hex, big],
    [smallDigest.hex, small],
  ]);
  if (shared) blobs.set(shared.blob[0].hex, shared.blob[1]);
  const manifested = new Set<string>();
  for (const hex of blobs.keys()) if (await store.blobStore.getManifest(Digest.parse(hex))) manifested.add(hex);
  return { root: rootDigest, directories: leaves.map(directoryDigest), blobs, manifested };
}

/**
 * The stored objects of a kind, hex digest → usedAt. Writes within one
 * millisecond get times a tick apart (the store's clock is strictly
 * increasing): `inMs` gives the millisecond.
 */
async function listed(store: Store, kind: ObjectKind): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of store.parts.objects.listObjects(kind)) out.set(o.digest.hex, o.usedAt);
  return out;
}

const inMs = Math.floor;

/** A tree's chunks, by hex digest. */
async function chunksOf(store: Store, tree: Tree): Promise<string[]> {
  const out: string[] = [];
  for (const hex of tree.blobs.keys()) out.push(...(await chunksOfBlob(store, Digest.parse(hex))));
  return out;
}

/** The tree reads in full: every directory, every blob byte for byte. */
async function expectWhole(store: Store, tree: Tree): Promise<void> {
  const seen: string[] = [];
  for await (const d of store.directories.getRecursive(tree.root)) seen.push(directoryDigest(d).hex);
  expect(seen.sort()).toEqual(tree.directories.map((d) => d.hex).sort());
  for (const [hex, bytes] of tree.blobs) expect((await readBlob(store, Digest.parse(hex))).equals(bytes)).toBe(true);
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-lmdb-gc-test-"));
  path = join(dir, "store");
  // Only Date: the store's clock, which usedAt and a collection's cutoff are read from.
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(T0);
});
afterEach(async () => {
  vi.useRealTimers();
  await Promise.all(opened.splice(0).map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe("LMDB garbage collection", () => {
  it("with no grace deletes only what no ref reaches: directories, blobs and chunks; the ref's tree still reads in full", async () => {
    const store = await openStore();
    const sharedBytes = randomBytes(3000);
    const sharedBlob = await writeBlob(store, sharedBytes);
    const sharedDirectory = makeDirectory({ files: [makeFileNode("x", sharedBlob, sharedBytes.length)] });
    const shared = { directory: sharedDirectory, blob: [sharedBlob, sharedBytes] as [Digest, Buffer] };
    const kept = await uploadTree(store, shared);
    const garbage = await uploadTree(store, shared);
    await store.refs.set("kept", kept.root);
    const keptChunks = await chunksOf(store, kept);
    const garbageChunks = (await chunksOf(store, garbage)).filter((c) => !keptChunks.includes(c));
    const garbageBlobs = [...garbage.blobs.keys()].filter((b) => !kept.blobs.has(b));
    const garbageDirectories = garbage.directories
      .map((d) => d.hex)
      .filter((d) => d !== directoryDigest(sharedDirectory).hex);
    expect(garbageBlobs).toHaveLength(2);
    expect(garbageChunks.length).toBeGreaterThan(2);

    vi.setSystemTime(T0 + MINUTE);
    const report = await store.gc.collect({ graceMs: 0 });

    expect(report.deleted).toEqual({
      directory: garbageDirectories.length,
      blob: garbageBlobs.filter((b) => garbage.manifested.has(b)).length,
      chunk: garbageChunks.length,
    });
    expect(report.spared).toBe(0);
    const directories = await listed(store, "directory");
    const blobs = await listed(store, "blob");
    const chunks = await listed(store, "chunk");
    for (const d of garbageDirectories) expect(directories.has(d), `directory ${d}`).toBe(false);
    for (const b of garbageBlobs) expect(blobs.has(b), `blob ${b}`).toBe(false);
    for (const c of garbageChunks) expect(chunks.has(c), `chunk ${c}`).toBe(false);
    expect(directories.size).toBe(kept.directories.length);
    expect(blobs.size).toBe(kept.manifested.size);
    expect(chunks.size).toBe(new Set(keptChunks).size);
    await expectWhole(store, kept);

    // Nothing left to collect.
    const again = await store.gc.collect({ graceMs: 0 });
    expect(again.deleted).toEqual({ directory: 0, blob: 0, chunk: 0 });
  });

  it("with no grace and the wall clock standing still, collects everything written before it started (the store's clock)", async () => {
    const store = await openStore();
    const tree = await uploadTree(store);
    // Date.now() has not moved since the upload: only the store's strictly increasing clock orders them.
    const report = await store.gc.collect({ graceMs: 0 });
    expect(report.startedAt).toBeGreaterThan(T0);
    expect(report.deleted.directory).toBe(tree.directories.length);
    expect(report.deleted.blob).toBe(tree.manifested.size);
    expect(await listed(store, "chunk")).toEqual(new Map());
  });

  it("keeps unreferenced objects younger than the default grace (one hour), then collects them", async () => {
    const store = await openStore();
    const tree = await uploadTree(store);

    vi.setSystemTime(T0 + 59 * MINUTE);
    const report = await store.gc.collect();
    expect(report.deleted).toEqual({ directory: 0, blob: 0, chunk: 0 });
    expect(report.live.directory).toBe(tree.directories.length);
    await expectWhole(store, tree);

    vi.setSystemTime(T0 + 61 * MINUTE);
    const later = await store.gc.collect();
    expect(later.deleted.directory).toBe(tree.directories.length);
    expect(later.deleted.blob).toBe(tree.manifested.size);
    expect(await listed(store, "chunk")).toEqual(new Map());
  });

  it("spares an object written, uploaded again or asked about after the listing (deleteUnusedSince re-checks usedAt)", async () => {
    const store = await openStore();
    const again = await uploadTree(store);
    const untouched = await uploadTree(store);
    const asked = randomBytes(5000);
    const askedBlob = await writeBlob(store, asked);
    const { objects } = store.parts;
    const spareChunks = [...(await chunksOf(store, again)), ...(await chunksOfBlob(store, askedBlob))];
    const goneChunks = await chunksOf(store, untouched);

    // A collection listed everything at T0 + 10 min, with 5 min of grace: all of it was garbage then.
    vi.setSystemTime(T0 + 10 * MINUTE);
    const cutoff = T0 + 5 * MINUTE;
    const directories = await listed(store, "directory");
    expect([...directories.values()].every((usedAt) => usedAt < cutoff)).toBe(true);

    // Before its deletes: one tree is uploaded again (directories and blobs), one blob is asked about.
    vi.setSystemTime(T0 + 11 * MINUTE);
    for (const bytes of again.blobs.values()) await writeBlob(store, bytes);
    await uploadTreeAgain(store, again);
    expect(await store.blobs.has([askedBlob])).toEqual([true]);

    const dirDigests = [...again.directories, ...untouched.directories];
    const deletedDirs = await objects.deleteUnusedSince("directory", dirDigests, cutoff);
    expect(deletedDirs.map((o) => o.digest.hex).sort()).toEqual(untouched.directories.map((d) => d.hex).sort());

    const blobDigests = [...again.blobs.keys(), ...untouched.blobs.keys(), askedBlob.hex].map((h) => Digest.parse(h));
    const deletedBlobs = await objects.deleteUnusedSince("blob", blobDigests, cutoff);
    expect(deletedBlobs.map((o) => o.digest.hex).sort()).toEqual([...untouched.manifested].sort());

    const deletedChunks = await objects.deleteUnusedSince(
      "chunk",
      [...spareChunks, ...goneChunks].map((h) => Digest.parse(h)),
      cutoff,
    );
    expect(deletedChunks.map((o) => o.digest.hex).sort()).toEqual([...new Set(goneChunks)].sort());

    await expectWhole(store, again);
    expect((await readBlob(store, askedBlob)).equals(asked)).toBe(true);
  });

  it("a partial upload marks its stored child and the child's whole closure used, in its write transaction", async () => {
    const store = await openStore();
    const tree = await uploadTree(store);
    vi.setSystemTime(T0 + 10 * MINUTE);
    const cutoff = T0 + 5 * MINUTE;
    const stored = (await store.directories.get(tree.root))!;
    const putter = store.directories.putMultipleStart({ partial: true });
    await putter.put(makeDirectory({ directories: [makeDirectoryNode("kept", tree.root, directorySize(stored))] }));
    await putter.close();
    expect(await store.parts.objects.deleteUnusedSince("directory", tree.directories, cutoff)).toEqual([]);
    await expectWhole(store, tree);
  });

  it("keeps usedAt across closing and reopening the environment", async () => {
    const first = await openStore();
    const tree = await uploadTree(first);
    const before = {
      directory: await listed(first, "directory"),
      blob: await listed(first, "blob"),
      chunk: await listed(first, "chunk"),
    };
    expect([...before.directory.values()].map(inMs)).toEqual(tree.directories.map(() => T0));
    await Promise.all(opened.splice(0).map((s) => s.close()));

    vi.setSystemTime(T0 + 30 * MINUTE);
    const second = await openStore();
    for (const kind of ["directory", "blob", "chunk"] as const)
      expect(await listed(second, kind)).toEqual(before[kind]);
    // Their time is T0's, not the reopening's: 20 minutes of grace no longer covers them.
    const report = await second.gc.collect({ graceMs: 20 * MINUTE });
    expect(report.deleted.directory).toBe(tree.directories.length);
  });

  it("gives objects stored before usedAt existed the time a collection first lists them, and deletes none of them then", async () => {
    const store = await openStore();
    const tree = await uploadTree(store);
    // As a store written before the "used" database: no object has a usedAt.
    await store.parts.objects.used.clearAsync();

    vi.setSystemTime(T0 + 90 * MINUTE);
    const first = await store.gc.collect({ graceMs: 0 });
    expect(first.deleted).toEqual({ directory: 0, blob: 0, chunk: 0 });
    expect([...(await listed(store, "directory")).values()].map(inMs)).toEqual(
      tree.directories.map(() => T0 + 90 * MINUTE),
    );
    await expectWhole(store, tree);

    vi.setSystemTime(T0 + 91 * MINUTE);
    const second = await store.gc.collect({ graceMs: 0 });
    expect(second.deleted.directory).toBe(tree.directories.length);
    expect(second.deleted.blob).toBe(tree.manifested.size);
  });

  it("a ref set that a collection starts in the middle of protects the tree again before writing the ref (fenced)", async () => {
    const store = await openStore();
    const tree = await uploadTree(store);
    const { objects } = store.parts;
    // A collection (in another process, say) starts after the set marked the blobs and before it marks the directories.
    let startedAt: number | undefined;
    const touch = objects.touch.bind(objects);
    const touched: string[] = [];
    vi.spyOn(objects, "touch").mockImplementation(async (kind, digests, signal) => {
      touched.push(kind);
      if (kind === "directory" && startedAt === undefined) startedAt = await objects.startCollection();
      return touch(kind, digests, signal);
    });

    await store.refs.set("fenced", tree.root);

    // Marked twice: the first marking of the blobs came before the start, old to that collection with no grace.
    expect(touched).toEqual(["blob", "directory", "blob", "directory"]);
    for (const kind of ["directory", "blob"] as const) {
      const times = await listed(store, kind);
      expect(times.size).toBeGreaterThan(0);
      for (const usedAt of times.values()) expect(usedAt).toBeGreaterThan(startedAt!);
    }
    expect(await store.refs.get("fenced")).toEqual(tree.root);
  });

  it("a ref set gives up after collections keep starting while it protects the tree, and writes nothing", async () => {
    const store = await openStore();
    const tree = await uploadTree(store);
    const { objects } = store.parts;
    const touch = objects.touch.bind(objects);
    vi.spyOn(objects, "touch").mockImplementation(async (kind, digests, signal) => {
      if (kind === "directory") await objects.startCollection();
      return touch(kind, digests, signal);
    });

    await expect(store.refs.set("never", tree.root)).rejects.toThrow(
      /setting ref never: a garbage collection started while its tree was being protected, 5 times in a row/,
    );
    expect(await store.refs.get("never")).toBeUndefined();
  });

  it("by URL: openGarbageCollector collects, and openRefService's set marks the whole tree used (protect)", async () => {
    const store = await openStore();
    const kept = await uploadTree(store);
    const garbage = await uploadTree(store);
    const url = `lmdb://${path}`;

    vi.setSystemTime(T0 + 10 * MINUTE);
    const refs = await openRefService(url);
    opened.push(refs);
    await refs.set("kept", kept.root);
    const directories = await listed(store, "directory");
    for (const d of kept.directories) expect(inMs(directories.get(d.hex)!)).toBe(T0 + 10 * MINUTE);
    for (const d of garbage.directories) expect(inMs(directories.get(d.hex)!)).toBe(T0);

    const gc = await openGarbageCollector(url);
    opened.push(gc);
    expect(gc.backend).toBe(`lmdb:${path}`);
    const report = await gc.collect({ graceMs: 5 * MINUTE });
    expect(report.roots).toBe(1);
    expect(report.deleted.directory).toBe(garbage.directories.length);
    expect(report.deleted.blob).toBe(garbage.manifested.size);
    await expectWhole(store, kept);
  });
});

/** Uploads a tree's directories again, as a client that holds the whole closure does. */
async function uploadTreeAgain(store: Store, tree: Tree): Promise<void> {
  const stored = await store.parts.directories.getMany(tree.directories);
  const putter = store.directories.putMultipleStart();
  for (const bytes of stored) await putter.put(decodeDirectory(bytes!));
  await putter.close();
}

/** A blob's chunks, by hex digest: its manifest's, or itself (a blob of one chunk is that chunk). */
async function chunksOfBlob(store: Store, blob: Digest): Promise<string[]> {
  const manifest = await store.blobStore.getManifest(blob);
  return manifest ? manifest.map((c) => c.digest.hex) : [blob.hex];
}
