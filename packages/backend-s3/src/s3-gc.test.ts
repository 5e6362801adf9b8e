/**
 * Garbage collection and refs on S3, against the real S3 test server: what a
 * collection keeps and deletes (index, closure, manifest and chunk objects),
 * the grace period, dry runs, closure objects that live directories still
 * point into, the request count of a collection (README "Garbage
 * collection"), and refs as objects under refs/.
 */
import {
  type BlobService,
  Digest,
  type Directory,
  blake3,
  encodeDirectory,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  openGarbageCollector,
  openRefService,
} from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import "./index.js";
import { s3BlobService } from "./s3-blobs.js";
import { S3GarbageCollector, s3RefService } from "./s3-gc.js";
import { collect, s3TestStoresForFile, upload } from "./test-s3.js";

const stores = s3TestStoresForFile();

function bytesOf(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function put(blobs: BlobService, bytes: Uint8Array): Promise<Digest> {
  const writer = blobs.openWriter();
  await writer.write(bytes);
  return (await writer.close()).digest;
}

async function readAll(blobs: BlobService, digest: Digest): Promise<Buffer | undefined> {
  const stream = await blobs.read(digest);
  if (!stream) return undefined;
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

/** One store on a fresh prefix: directories, blobs, refs (with protect) and a collector, each with its own client. */
function openStore() {
  const { service, prefix } = stores.open();
  const blobs = s3BlobService(stores.openBlobStore({ prefix }).store);
  const refs = s3RefService(stores.openObjects(prefix).objects, service);
  const { objects, counter } = stores.openObjects(prefix);
  const gc = new S3GarbageCollector(objects);
  const close = () => Promise.all([refs.close(), gc.close(), blobs.close(), service.close()]);
  return { service, blobs, refs, gc, objects, counter, prefix, close };
}

interface StoredTree {
  root: Digest;
  sub: Digest;
  /** A blob of several chunks and one of a single chunk, with their bytes. */
  files: { digest: Digest; bytes: Uint8Array }[];
}

/** root → sub → two files: one of about 700 KiB (several chunks), one of 1 KiB (one chunk). */
async function storeTree(s: ReturnType<typeof openStore>, seed: number): Promise<StoredTree> {
  const files = [bytesOf(seed, 700 * 1024), bytesOf(seed + 1, 1024)].map((bytes) => ({
    bytes,
    digest: Digest.fromBytes(blake3(bytes)),
  }));
  for (const f of files) expect((await put(s.blobs, f.bytes)).hex).toBe(f.digest.hex);
  const sub = makeDirectory({
    files: files.map((f, i) => makeFileNode(`f${i}`, f.digest, f.bytes.length)),
  });
  const subDigest = Digest.of(encodeDirectory(sub));
  const root = makeDirectory({ directories: [makeDirectoryNode(`sub${seed}`, subDigest, 2)] });
  const rootDigest = await upload(s.service, [sub, root]);
  return { root: rootDigest, sub: subDigest, files };
}

/** Every key a tree's objects have: index and closure objects, manifests and chunks (chunks read from the manifests). */
async function keysOf(s: ReturnType<typeof openStore>, tree: StoredTree): Promise<string[]> {
  const keys = [`dirs/${tree.root.hex}`, `dirs/${tree.sub.hex}`, `closures/${tree.root.hex}`];
  for (const f of tree.files) {
    const stat = await s.blobs.stat(f.digest, { chunks: true });
    // A blob of one chunk is that chunk: no manifest object (spec §8.1).
    if (stat!.chunks!.length > 1) keys.push(`blobs/${f.digest.hex}/manifest`);
    for (const c of stat!.chunks!) keys.push(`blobs/${c.digest.hex}/chunk`);
  }
  return keys.map((k) => `${s.prefix}${k}`).sort();
}

async function storedKeys(prefix: string): Promise<string[]> {
  return (await stores.listKeys(prefix)).sort();
}

/** A chain of `n` directories, leaf (empty) first: each after it holds the one before, named after `seed`. */
function chainOf(n: number, seed: number) {
  const chain = [makeDirectory({})];
  for (let i = 1; i < n; i++) {
    const child = Digest.of(encodeDirectory(chain[i - 1]));
    chain.push(makeDirectory({ directories: [makeDirectoryNode(`d${seed}-${i}`, child, i - 1)] }));
  }
  return chain;
}

describe("collection", () => {
  it("keeps a tree a ref names (it reads in full after) and deletes an unreferenced one with graceMs 0: index, closure, manifest and chunk objects", async () => {
    const s = openStore();
    try {
      const kept = await storeTree(s, 1);
      const gone = await storeTree(s, 2);
      await s.refs.set("releases/kept", kept.root);
      const keptKeys = await keysOf(s, kept);
      const goneKeys = await keysOf(s, gone);
      const goneChunks = goneKeys.filter((k) => k.endsWith("/chunk")).length;
      expect(goneChunks).toBeGreaterThan(2);

      const report = await s.gc.collect({ graceMs: 0 });
      // Blob manifests: the large file's; the small one is a single chunk, stored without one (spec §8.1).
      expect(report.deleted).toEqual({ directory: 2, blob: 1, chunk: goneChunks });
      // Live chunks: the kept blobs' chunks, and each kept blob's own digest (core counts it as a chunk too).
      const keptChunks = new Set([
        ...keptKeys.filter((k) => k.endsWith("/chunk")).map((k) => k.slice(-70, -6)),
        ...kept.files.map((f) => f.digest.hex),
      ]);
      expect(report.live).toEqual({ directory: 2, blob: 2, chunk: keptChunks.size });
      expect(report.spared).toBe(0);
      expect(report.roots).toBe(1);
      expect(s.gc.lastClosures.objects).toBe(1);
      expect(await storedKeys(s.prefix)).toEqual([...keptKeys, `${s.prefix}refs/releases/kept`].sort());

      // The kept tree reads in full: directories through the closure object, every blob byte for byte.
      expect((await collect(s.service, kept.root)).length).toBe(2);
      for (const f of kept.files) expect((await readAll(s.blobs, f.digest))!.equals(f.bytes)).toBe(true);
      expect(await s.service.get(gone.root)).toBeUndefined();
      expect(await s.service.get(gone.sub)).toBeUndefined();
      expect(await s.blobs.has(gone.files.map((f) => f.digest))).toEqual([false, false]);
    } finally {
      await s.close();
    }
  });

  it("with the default grace (one hour) deletes nothing just written, referenced or not", async () => {
    const s = openStore();
    try {
      await storeTree(s, 3);
      const before = await storedKeys(s.prefix);
      const report = await s.gc.collect();
      expect(report.deleted).toEqual({ directory: 0, blob: 0, chunk: 0 });
      expect(report.cutoff).toBe(report.startedAt - 60 * 60 * 1000);
      expect(await storedKeys(s.prefix)).toEqual(before);
    } finally {
      await s.close();
    }
  });

  it("a dry run counts what would go and deletes nothing; the real run then deletes exactly that", async () => {
    const s = openStore();
    try {
      const tree = await storeTree(s, 4);
      const keys = await keysOf(s, tree);
      const chunks = keys.filter((k) => k.endsWith("/chunk")).length;
      const dry = await s.gc.collect({ graceMs: 0, dryRun: true });
      expect(dry.dryRun).toBe(true);
      expect(dry.deleted).toEqual({ directory: 2, blob: 1, chunk: chunks });
      expect(dry.deletedBytes).toBeGreaterThan(700 * 1024);
      expect(await storedKeys(s.prefix)).toEqual(keys);

      const real = await s.gc.collect({ graceMs: 0 });
      expect(real.deleted).toEqual(dry.deleted);
      expect(real.deletedBytes).toBe(dry.deletedBytes);
      expect(await storedKeys(s.prefix)).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it("a closure object stays while a live directory's index points into it, and goes in the collection after that one is let go", async () => {
    const s = openStore();
    try {
      // root → mid → leaf, uploaded as one closure: mid's index object points into the root's closure object.
      const [leaf, mid, root] = chainOf(3, 5);
      const [, midDigest, rootDigest] = [leaf, mid, root].map((d) => Digest.of(encodeDirectory(d)));
      await upload(s.service, [leaf, mid, root]);
      await s.refs.set("mid", midDigest);
      const first = await s.gc.collect({ graceMs: 0 });
      expect(first.deleted).toEqual({ directory: 1, blob: 0, chunk: 0 });
      expect(s.gc.lastClosures.objects).toBe(0);
      expect(await stores.exists(`${s.prefix}dirs/${rootDigest.hex}`)).toBe(false);
      expect(await stores.exists(`${s.prefix}closures/${rootDigest.hex}`)).toBe(true);
      const hexes = (dirs: Directory[]) => dirs.map((d) => Digest.of(encodeDirectory(d)).hex);
      expect(hexes(await collect(s.service, midDigest))).toEqual(hexes([mid, leaf]));

      await s.refs.delete("mid");
      const second = await s.gc.collect({ graceMs: 0 });
      expect(second.deleted.directory).toBe(2);
      expect(s.gc.lastClosures.objects).toBe(1);
      expect(await storedKeys(s.prefix)).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it("a root of several directories deleted: its closure object waits for the last index object pointing into it", async () => {
    const s = openStore();
    try {
      // A chain of 4: every index object but the leaf's points into the root's closure object; all four are garbage.
      await upload(s.service, chainOf(4, 9));
      const report = await s.gc.collect({ graceMs: 0 });
      expect(report.deleted.directory).toBe(4);
      expect(s.gc.lastClosures.objects).toBe(1);
      expect(await storedKeys(s.prefix)).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it("costs the requests README states: 1 HEAD bucket; listings twice; a GET per live directory, named root and live blob; a GET and a HEAD per garbage directory, a HEAD per other garbage object; a DeleteObjects per kind; the closure listing and 2 HEADs per closure object no index points into", async () => {
    const s = openStore();
    try {
      const kept = await storeTree(s, 6);
      const gone = await storeTree(s, 7);
      await s.refs.set("kept", kept.root);
      const goneChunks = (await keysOf(s, gone)).filter((k) => k.endsWith("/chunk")).length;
      s.counter.reset();
      await s.gc.collect({ graceMs: 0 });
      const R = 1;
      const liveDirectories = 2;
      const liveBlobs = 2;
      // One manifest per tree: its small file is a single chunk, stored without one.
      const garbage = { directory: 2, blob: 1, chunk: goneChunks };
      const { byOperation } = s.counter.take();
      expect(byOperation).toEqual({
        HeadBucket: 1,
        // refs/, then dirs/ and blobs/ (for blobs, then for chunks), once to mark and once to sweep; then closures/.
        ListObjects: 1 + 2 * (1 + 2) + 1,
        // refs: 1 GET each; named roots read, then every live directory; each live blob's manifest; garbage directories read to order them.
        GetObject: R + R + liveDirectories + liveBlobs + garbage.directory,
        // 1 per garbage object, then 2 for the one closure object no index points into any more.
        HeadObject: garbage.directory + garbage.blob + garbage.chunk + 2,
        DeleteObjects: 3 + 1,
      });
    } finally {
      await s.close();
    }
  });
});

describe("refs", () => {
  it("are objects refs/<name> holding the digest in hex; set checks the tree is wholly stored (ClosureError otherwise)", async () => {
    const s = openStore();
    try {
      const tree = await storeTree(s, 8);
      await s.refs.set("a/b", tree.root);
      expect(Buffer.from((await stores.getRaw(`${s.prefix}refs/a/b`))!).toString()).toBe(`${tree.root.hex}\n`);
      expect((await s.refs.get("a/b"))?.hex).toBe(tree.root.hex);
      await stores.deleteRaw(`${s.prefix}blobs/${tree.files[1].digest.hex}/manifest`);
      await stores.deleteRaw(`${s.prefix}blobs/${tree.files[1].digest.hex}/chunk`);
      await expect(s.refs.set("c", tree.root)).rejects.toMatchObject({ code: "CLOSURE" });
      expect(await s.refs.get("c")).toBeUndefined();
    } finally {
      await s.close();
    }
  });

  it("open by s3:// URL through core's registries: openRefService and openGarbageCollector", async () => {
    const s = openStore();
    const cfg = stores.server.clientConfig();
    const creds = cfg.credentials as { accessKeyId: string; secretAccessKey: string };
    const url =
      `s3://${encodeURIComponent(creds.accessKeyId)}:${encodeURIComponent(creds.secretAccessKey)}@${stores.bucket}/` +
      `${s.prefix.slice(0, -1)}?endpoint=${encodeURIComponent(stores.server.endpoint)}&region=${cfg.region as string}`;
    const refs = await openRefService(url);
    const gc = await openGarbageCollector(url);
    try {
      const tree = await storeTree(s, 10);
      await refs.set("by-url", tree.root);
      expect((await s.refs.get("by-url"))?.hex).toBe(tree.root.hex);
      const report = await gc.collect();
      expect(report.roots).toBe(1);
      expect(report.live.directory).toBe(2);
    } finally {
      await Promise.all([refs.close(), gc.close(), s.close()]);
    }
  });
});
