import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import {
  AbortError,
  BackendError,
  ClosureError,
  CorruptionError,
  Digest,
  directoryDigest,
  directorySize,
  encodeDirectory,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  openDirectoryService,
  type ClosureEntry,
  type Directory,
  type InvalidStoredKey,
} from "@castore-ts/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LmdbDirectoryService, LmdbDirectoryStore } from "./index.js";

const { DIRECTORY_A, DIRECTORY_B, DIRECTORY_C, DIRECTORY_D } = fixtures;

let dir: string;
const open: LmdbDirectoryService[] = [];

async function openService(path = join(dir, "store")): Promise<LmdbDirectoryService> {
  const service = await LmdbDirectoryService.open(path);
  open.push(service);
  return service;
}

async function upload(service: LmdbDirectoryService, directories: Directory[]): Promise<Digest> {
  const putter = service.putMultipleStart();
  for (const d of directories) await putter.put(d);
  return putter.close();
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

function entry(d: Directory): ClosureEntry {
  const bytes = encodeDirectory(d);
  return { digest: Digest.of(bytes), bytes, directory: d };
}

/** A root with `n` distinct child directories (each holds one differently named file), children first. */
function wideTree(n: number, tag = ""): Directory[] {
  const children = Array.from({ length: n }, (_, i) =>
    makeDirectory({ files: [makeFileNode(`f${tag}${i}`, fixtures.EMPTY_BLOB_DIGEST, 0)] }),
  );
  const nodes = children.map((c, i) =>
    makeDirectoryNode(`d${String(i).padStart(6, "0")}`, directoryDigest(c), directorySize(c)),
  );
  return [...children, makeDirectory({ directories: nodes })];
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-lmdb-test-"));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  rmSync(dir, { recursive: true, force: true });
});

describe("LmdbDirectoryService", () => {
  it("stores digest bytes → canonical bytes in the directories database", async () => {
    const service = await openService();
    const root = await upload(service, [DIRECTORY_A, DIRECTORY_B]);
    expect(root.equals(directoryDigest(DIRECTORY_B))).toBe(true);
    const raw = service.store.directories.getBinary(root.bytes);
    expect(raw && Buffer.from(raw).equals(Buffer.from(encodeDirectory(DIRECTORY_B)))).toBe(true);
    expect(service.store.directories.getBinary(directoryDigest(DIRECTORY_A).bytes)?.length).toBe(0);
  });

  it("keeps what it stored across close and reopen", async () => {
    const path = join(dir, "store");
    const first = await LmdbDirectoryService.open(path);
    await upload(first, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D]);
    await first.close();
    const again = await openService(path);
    const got = await collect(again.getRecursive(directoryDigest(DIRECTORY_D)));
    expect(got.map((d) => directoryDigest(d).hex)).toEqual(
      [DIRECTORY_D, DIRECTORY_A, DIRECTORY_B].map((d) => directoryDigest(d).hex),
    );
  });

  it("lists every digest, across pages, including keys starting with zero bytes", async () => {
    const service = await openService();
    const tree = wideTree(5000);
    await upload(service, tree);
    // A key with leading zero bytes sorts first; the default range start must not skip it.
    service.store.directories.putSync(new Uint8Array(32), encodeDirectory(DIRECTORY_A));
    const listed = await collect(service.listDigests!());
    const expected = new Set([...tree.map((d) => directoryDigest(d).hex), "00".repeat(32)]);
    expect(listed.length).toBe(expected.size);
    expect(new Set(listed.map((d) => d.hex))).toEqual(expected);
  });

  it("a stored key that is not a digest goes to onInvalidKey and the listing goes on; without it, CorruptionError", async () => {
    const service = await openService();
    await upload(service, [DIRECTORY_A, DIRECTORY_B]);
    // Keys castore never writes: sorting first, and between the stored digests.
    const short = new Uint8Array(31);
    const long = new Uint8Array(33).fill(0x80);
    service.store.directories.putSync(short, encodeDirectory(DIRECTORY_A));
    service.store.directories.putSync(long, encodeDirectory(DIRECTORY_A));
    const invalid: InvalidStoredKey[] = [];
    const listed = await collect(service.listDigests!({ onInvalidKey: (k) => invalid.push(k) }));
    expect(new Set(listed.map((d) => d.hex))).toEqual(
      new Set([DIRECTORY_A, DIRECTORY_B].map((d) => directoryDigest(d).hex)),
    );
    expect(invalid).toEqual([
      { key: "00".repeat(31), reason: "stored key of 31 bytes is not a digest" },
      { key: "80".repeat(33), reason: "stored key of 33 bytes is not a digest" },
    ]);
    const error = await collect(service.listDigests!()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CorruptionError);
    expect(String(error)).toContain(`stored key of 31 bytes is not a digest (key ${"00".repeat(31)})`);
  });

  it("leaves existing keys alone (content addressed: no rewrite)", async () => {
    const service = await openService();
    const b = directoryDigest(DIRECTORY_B);
    await upload(service, [DIRECTORY_A, DIRECTORY_B]);
    service.store.directories.putSync(b.bytes, encodeDirectory(DIRECTORY_C)); // damage B
    await upload(service, [DIRECTORY_A, DIRECTORY_B]); // uploading B again does not rewrite it
    await expect(service.get(b)).rejects.toThrow(CorruptionError);
    await expect(service.get(b)).rejects.toThrow(b.hex);
  });

  it("rolls the whole upload back when a write fails part-way", async () => {
    const service = await openService();
    const good = [entry(DIRECTORY_A), entry(DIRECTORY_C)];
    // A zero-length key makes LMDB fail after the first two puts.
    const bad = { ...entry(DIRECTORY_B), digest: { bytes: new Uint8Array(0) } as unknown as Digest };
    await expect(service.store.putClosure([...good, bad])).rejects.toThrow();
    for (const e of good) expect(service.store.directories.getBinary(e.digest.bytes)).toBeUndefined();
    expect(await collect(service.listDigests!())).toEqual([]);
    // and the store still works afterwards
    await upload(service, [DIRECTORY_A, DIRECTORY_C]);
    expect(await service.get(directoryDigest(DIRECTORY_C))).toBeDefined();
  });

  it("stores nothing for an aborted upload", async () => {
    const service = await openService();
    const controller = new AbortController();
    const putter = service.putMultipleStart({ signal: controller.signal });
    await putter.put(DIRECTORY_A);
    await putter.put(DIRECTORY_B);
    controller.abort();
    await expect(putter.close()).rejects.toThrow(AbortError);
    await expect(service.store.putClosure([entry(DIRECTORY_A)], controller.signal)).rejects.toThrow(AbortError);
    expect(await collect(service.listDigests!())).toEqual([]);
  });

  it("stores nothing for a closure that fails core's checks", async () => {
    const service = await openService();
    await expect(upload(service, [DIRECTORY_B])).rejects.toThrow(ClosureError);
    await expect(upload(service, [DIRECTORY_A, DIRECTORY_C, DIRECTORY_B])).rejects.toThrow(/not connected/);
    expect(await collect(service.listDigests!())).toEqual([]);
  });

  it("lets two services on one path in one process see each other's writes", async () => {
    const path = join(dir, "shared");
    const a = await openService(path);
    const b = await openService(path);
    await upload(a, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D]);
    expect(await collect(b.getRecursive(directoryDigest(DIRECTORY_D)))).toHaveLength(3);
    await a.close();
    await upload(b, [DIRECTORY_A, DIRECTORY_C]);
    expect(await b.get(directoryDigest(DIRECTORY_C))).toBeDefined();
  });

  it("returns copies: values stay intact after later reads", async () => {
    const service = await openService();
    const tree = wideTree(100);
    await upload(service, tree);
    const digests = tree.map((d) => directoryDigest(d));
    const first = await service.store.getMany(digests);
    const snapshot = first.map((b) => Buffer.from(b!).toString("hex"));
    await service.store.getMany([...digests].reverse());
    expect(first.map((b) => Buffer.from(b!).toString("hex"))).toEqual(snapshot);
    expect(new Set(first.map((b) => b!.buffer)).size).toBeGreaterThan(1);
  });

  it("returns copies of large values too (beyond lmdb's reusable read buffer)", async () => {
    const service = await openService();
    const files = Array.from({ length: 30_000 }, (_, i) =>
      makeFileNode(`file-${String(i).padStart(6, "0")}`, fixtures.EMPTY_BLOB_DIGEST, i),
    );
    const big = makeDirectory({ files });
    const bigDigest = await upload(service, [big]);
    await upload(service, [DIRECTORY_A, DIRECTORY_C]);
    const [bigBytes] = await service.store.getMany([bigDigest]);
    const before = Buffer.from(bigBytes!).toString("base64");
    expect(bigBytes!.length).toBeGreaterThan(1_000_000);
    await service.store.getMany([directoryDigest(DIRECTORY_C), bigDigest, directoryDigest(DIRECTORY_A)]);
    expect(Buffer.from(bigBytes!).toString("base64")).toBe(before);
    expect((await service.get(bigDigest))!.files).toHaveLength(30_000);
  });

  it("handles 32 concurrent overlapping uploads", async () => {
    const service = await openService();
    const shared = wideTree(200, "shared");
    const roots = await Promise.all(
      Array.from({ length: 32 }, async (_, i) => {
        const own = makeDirectory({ files: [makeFileNode(`own${i}`, fixtures.EMPTY_BLOB_DIGEST, 0)] });
        const sharedRoot = shared[shared.length - 1];
        const root = makeDirectory({
          directories: [
            makeDirectoryNode("own", directoryDigest(own), directorySize(own)),
            makeDirectoryNode("shared", directoryDigest(sharedRoot), directorySize(sharedRoot)),
          ],
        });
        return upload(service, [...shared, own, root]);
      }),
    );
    for (const root of roots) expect(await collect(service.getRecursive(root))).toHaveLength(shared.length + 2);
  });

  it("closes idempotently and refuses work afterwards with a BackendError", async () => {
    const service = await LmdbDirectoryService.open(join(dir, "store"));
    await upload(service, [DIRECTORY_A]);
    await service.close();
    await service.close();
    await expect(service.get(directoryDigest(DIRECTORY_A))).rejects.toThrow(BackendError);
    await expect(service.get(directoryDigest(DIRECTORY_A))).rejects.toThrow(/store is closed/);
    await expect(upload(service, [DIRECTORY_A])).rejects.toThrow(BackendError);
  });
});

describe("README", () => {
  it("usage example runs as written (with a temporary path)", async () => {
    const lines: unknown[] = [];
    const console = { log: (x: unknown) => lines.push(x) };
    // --- from README.md
    const service = await LmdbDirectoryService.open(join(dir, "castore-data")); // created if missing
    try {
      const putter = service.putMultipleStart(); // one upload, leaves to root
      await putter.put(fixtures.DIRECTORY_A);
      await putter.put(fixtures.DIRECTORY_B);
      const root = await putter.close(); // stored atomically and flushed to disk
      for await (const directory of service.getRecursive(root)) console.log(directory);
    } finally {
      await service.close();
    }
    // ---
    expect(lines).toHaveLength(2);
    const byUrl = await openDirectoryService(`lmdb://${join(dir, "castore-data")}?mapSize=1GiB`);
    expect(await byUrl.get(directoryDigest(DIRECTORY_B))).toBeDefined();
    await byUrl.close();
  });
});

describe("opening", () => {
  it("creates missing parent directories, also for a name with a dot", async () => {
    const service = await openService(join(dir, "a", "b", "store.v1"));
    await upload(service, [DIRECTORY_A]);
    expect(service.store.path).toBe(join(dir, "a", "b", "store.v1"));
    expect(service.store.backend).toBe(`lmdb:${join(dir, "a", "b", "store.v1")}`);
  });

  it("fails with a BackendError naming the path when it is a file", async () => {
    const file = join(dir, "file");
    writeFileSync(file, "not a store");
    await expect(LmdbDirectoryService.open(file)).rejects.toThrow(BackendError);
    await expect(LmdbDirectoryService.open(file)).rejects.toThrow(
      `cannot open LMDB store at ${file}: it exists and is not a directory`,
    );
  });

  it("fails with a BackendError naming the path when a parent is a file", async () => {
    const file = join(dir, "file");
    writeFileSync(file, "");
    const path = join(file, "store");
    const error = await LmdbDirectoryService.open(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).message).toContain(`cannot open LMDB store at ${path}`);
    expect((error as BackendError).unavailable).toBe(true);
  });

  it("fails with a BackendError naming the path when it is not writable", async () => {
    const locked = join(dir, "locked");
    mkdirSync(locked);
    const unlock = lockDirectory(locked);
    try {
      const path = join(locked, "store");
      await expect(LmdbDirectoryService.open(path)).rejects.toThrow(`cannot open LMDB store at ${path}`);
    } finally {
      unlock();
    }
  });

  it("fails with a BackendError when the directory holds something that is not LMDB", async () => {
    const path = join(dir, "garbage");
    mkdirSync(path);
    writeFileSync(join(path, "data.mdb"), Buffer.alloc(64 * 1024, 0x5a));
    const error = await LmdbDirectoryService.open(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendError);
    expect((error as Error).message).toContain(
      `cannot open LMDB store at ${path}: ${join(path, "data.mdb")} is not an LMDB data file`,
    );
    writeFileSync(join(path, "data.mdb"), "short");
    await expect(LmdbDirectoryService.open(path)).rejects.toThrow(/is not an LMDB data file/);
    // An empty data.mdb is fine: LMDB initialises it.
    writeFileSync(join(path, "data.mdb"), "");
    await upload(await openService(path), [DIRECTORY_A]);
  });

  it("is registered for lmdb: URLs, absolute and relative to the working directory", async () => {
    const abs = await openDirectoryService(`lmdb://${join(dir, "abs")}`);
    open.push(abs as LmdbDirectoryService);
    expect(abs).toBeInstanceOf(LmdbDirectoryService);
    expect((abs as LmdbDirectoryService).store.path).toBe(join(dir, "abs"));

    // The short form keeps ".." segments; in lmdb://./… the URL parser would fold them away (see README).
    const rel = await openDirectoryService(`lmdb:${relative(process.cwd(), join(dir, "rel"))}?noSync=true`);
    open.push(rel as LmdbDirectoryService);
    expect((rel as LmdbDirectoryService).store.path).toBe(join(dir, "rel"));
    await upload(rel as LmdbDirectoryService, [DIRECTORY_A]);
  });

  it("passes sizeCheck through from openDirectoryService", async () => {
    const service = await openDirectoryService(`lmdb://${join(dir, "s")}`, { sizeCheck: "snix-compat" });
    open.push(service as LmdbDirectoryService);
    // A legacy size (2·n + s = 2 for WITH_KEEP, canonical 1): only snix-compat takes it.
    await upload(service as LmdbDirectoryService, [
      fixtures.DIRECTORY_WITH_KEEP,
      fixtures.DIRECTORY_COMPLICATED_LEGACY,
    ]);
    const exact = await openDirectoryService(`lmdb://${join(dir, "e")}`);
    open.push(exact as LmdbDirectoryService);
    await expect(
      upload(exact as LmdbDirectoryService, [fixtures.DIRECTORY_WITH_KEEP, fixtures.DIRECTORY_COMPLICATED_LEGACY]),
    ).rejects.toThrow(ClosureError);
  });

  it("LmdbDirectoryStore.open is synchronous and usable on its own", async () => {
    const store = LmdbDirectoryStore.open(join(dir, "raw"));
    try {
      await store.putClosure([entry(DIRECTORY_A)]);
      const [bytes] = await store.getMany([directoryDigest(DIRECTORY_A)]);
      expect(bytes).toBeInstanceOf(Uint8Array);
      expect(bytes!.length).toBe(0);
    } finally {
      await store.close();
    }
  });
});

/**
 * Makes `path` unwritable, returning the undo. Root ignores permission bits
 * (CI runs as root), so there the directory is made immutable (chattr +i,
 * which binds root too); where that is not possible the test fails, saying so.
 */
function lockDirectory(path: string): () => void {
  if (process.getuid?.() !== 0) {
    chmodSync(path, 0o500);
    return () => chmodSync(path, 0o700);
  }
  const chattr = (flag: string) => spawnSync("chattr", [flag, path], { encoding: "utf8" });
  const locked = chattr("+i");
  if (locked.status !== 0) {
    throw new Error(
      `cannot make ${path} unwritable as root: chattr +i failed (${locked.error?.message ?? locked.stderr.trim()})`,
    );
  }
  return () => void chattr("-i");
}
