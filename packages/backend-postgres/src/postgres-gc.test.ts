/**
 * Garbage collection on PostgreSQL (spec §10): the in-database collector,
 * the touch rules of the write paths, the directory scanner, refs, and the
 * upgrade of a layout version 4 schema.
 */
import { randomBytes } from "node:crypto";
import {
  AbortError,
  BackendError,
  ChunkedBlobService,
  ClosureError,
  ConflictError,
  CorruptionError,
  Digest,
  InProcessCollector,
  decodeDirectory,
  directoryDigest,
  directorySize,
  encodeDirectory,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
  openGarbageCollector,
  openRefStore,
  protectClosure,
  type CollectProgress,
  type Directory,
  type DirectoryService,
} from "@castore-ts/core";
import { waitFor } from "@castore-ts/testing";
import { describe, expect, it } from "vitest";
import {
  PostgresBlobStore,
  PostgresCollectableStore,
  PostgresGarbageCollector,
  PostgresRefStore,
  postgresRefService,
  PostgresDirectoryService,
  SCHEMA_VERSION,
} from "./index.js";
import { postgresTestStoresForFile } from "./test-postgres.js";

const stores = postgresTestStoresForFile();

/** Small chunks, so a few KiB make a blob of several chunks. */
const SMALL_CHUNKS = { chunking: { minSize: 64, avgSize: 256, maxSize: 1024 } };

/** A service, blobs, refs and collector on one fresh schema. */
async function openAll() {
  const service = stores.open();
  await service.store.init();
  const blobStore = PostgresBlobStore.sharing(service.store);
  const blobs = new ChunkedBlobService(blobStore, SMALL_CHUNKS);
  const refs = postgresRefService(service, blobs);
  const gc = PostgresGarbageCollector.sharing(service.store);
  const schema = service.store.schema;
  return { service, blobStore, blobs, refs, gc, schema };
}

async function upload(service: DirectoryService, directories: Directory[]): Promise<Digest> {
  const putter = service.putMultipleStart();
  for (const d of directories) await putter.put(d);
  return putter.close();
}

async function writeBlob(blobs: ChunkedBlobService, bytes: Uint8Array): Promise<Digest> {
  const writer = blobs.openWriter();
  await writer.write(bytes);
  return (await writer.close()).digest;
}

/** A tree: root → sub (a file of `blob`) and a symlink; directories children first. */
function treeWith(blob: Digest, size: number, tag: string): { directories: Directory[]; root: Digest } {
  const sub = makeDirectory({ files: [makeFileNode(`file-${tag}`, blob, size)] });
  const root = makeDirectory({
    directories: [makeDirectoryNode("sub", directoryDigest(sub), directorySize(sub))],
    symlinks: [makeSymlinkNode("link", tag)],
  });
  return { directories: [sub, root], root: directoryDigest(root) };
}

async function digestsIn(schema: string, table: string): Promise<Set<string>> {
  const { rows } = await stores.admin.query(`SELECT encode(digest, 'hex') AS d FROM "${schema}".${table}`);
  return new Set(rows.map((r) => r.d as string));
}

async function count(schema: string, table: string): Promise<number> {
  const { rows } = await stores.admin.query(`SELECT count(*)::int AS n FROM "${schema}".${table}`);
  return rows[0].n;
}

/** Sets used_at of every row of the three tables an hour back: everything is old. */
async function ageEverything(schema: string): Promise<void> {
  for (const table of ["directories", "blobs", "chunks"])
    await stores.admin.query(`UPDATE "${schema}".${table} SET used_at = used_at - interval '1 hour'`);
}

async function usedAt(schema: string, table: string, digest: Digest): Promise<number> {
  const { rows } = await stores.admin.query(
    `SELECT extract(epoch FROM used_at) * 1000 AS ms FROM "${schema}".${table} WHERE digest = $1`,
    [Buffer.from(digest.bytes)],
  );
  return Number(rows[0].ms);
}

describe("the collector", () => {
  it("keeps every ref's closure (directories, manifests, chunks) and deletes what nothing names", async () => {
    const { service, blobs, refs, gc, schema } = await openAll();
    const keptBytes = new Uint8Array(randomBytes(4000));
    const keptBlob = await writeBlob(blobs, keptBytes);
    const kept = treeWith(keptBlob, keptBytes.length, "kept");
    await upload(service, kept.directories);
    await refs.set("releases/kept", kept.root);
    const goneBytes = new Uint8Array(randomBytes(4000));
    const goneBlob = await writeBlob(blobs, goneBytes);
    const gone = treeWith(goneBlob, goneBytes.length, "gone");
    await upload(service, gone.directories);
    const chunksBefore = await count(schema, "chunks");

    const report = await gc.collect({ graceMs: 0 });

    expect(report.deleted).toEqual({ directory: 2, blob: 1, chunk: chunksBefore - (await count(schema, "chunks")) });
    expect(report.deleted.chunk).toBeGreaterThan(1);
    expect(report.spared).toBe(0);
    expect(report.roots).toBe(1);
    expect(report.missingRoots).toEqual([]);
    expect(report.live.directory).toBe(2);
    expect(report.cutoff).toBe(report.startedAt);
    // The start is the one recorded, to the microsecond: not whole ms (an object used in the same
    // millisecond before the start would then count as used since, and a collection with no grace
    // right after a write deleted nothing).
    const { rows } = await stores.admin.query(
      `SELECT (extract(epoch FROM last_started_at) * 1000)::float8 AS ms FROM "${schema}".collections`,
    );
    expect(Math.abs(report.startedAt - rows[0].ms)).toBeLessThan(0.0005);
    expect(await digestsIn(schema, "directories")).toEqual(
      new Set(kept.directories.map((d) => directoryDigest(d).hex)),
    );
    expect(await digestsIn(schema, "blobs")).toEqual(new Set([keptBlob.hex]));
    expect(await count(schema, "blob_chunks")).toBe((await blobs.store.getManifest(keptBlob))!.length);
    // The kept blob reads back whole; the collected one is gone.
    const read = await blobs.read(keptBlob);
    const parts: Uint8Array[] = [];
    for await (const part of read!) parts.push(part);
    expect(Buffer.concat(parts).equals(Buffer.from(keptBytes))).toBe(true);
    expect(await blobs.has([goneBlob])).toEqual([false]);
    expect(await service.get(gone.root)).toBeUndefined();
    // Bytes: the two directories, the manifest (44 + 40 per chunk) and the chunks' data.
    expect(report.deletedBytes).toBeGreaterThan(goneBytes.length);
  });

  it("spares everything used within the grace period (the default is an hour)", async () => {
    const { service, blobs, gc, schema } = await openAll();
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const tree = treeWith(blob, 3000, "young");
    await upload(service, tree.directories);

    const report = await gc.collect();

    expect(report.deleted).toEqual({ directory: 0, blob: 0, chunk: 0 });
    expect(report.startedAt - report.cutoff).toBe(60 * 60 * 1000);
    expect(report.live.directory).toBe(2);
    expect(await count(schema, "directories")).toBe(2);
    // Once old, the same rows are garbage.
    await ageEverything(schema);
    const later = await gc.collect();
    expect(later.deleted.directory).toBe(2);
    expect(later.deleted.blob).toBe(1);
    expect(await count(schema, "chunks")).toBe(0);
  });

  it("keeps a young directory's whole closure, however old the rest of it is", async () => {
    const { service, blobs, gc, schema } = await openAll();
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const tree = treeWith(blob, 3000, "t");
    await upload(service, tree.directories);
    await ageEverything(schema);
    await stores.admin.query(`UPDATE "${schema}".directories SET used_at = now() WHERE digest = $1`, [
      Buffer.from(tree.root.bytes),
    ]);
    const report = await gc.collect({ graceMs: 60_000 });
    expect(report.deleted).toEqual({ directory: 0, blob: 0, chunk: 0 });
    expect(report.roots).toBe(0);
  });

  it("a dry run counts what a collection would delete and deletes nothing", async () => {
    const { service, blobs, gc, schema } = await openAll();
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    await upload(service, treeWith(blob, 3000, "dry").directories);
    const chunks = await count(schema, "chunks");

    const dry = await gc.collect({ graceMs: 0, dryRun: true });

    expect(dry.dryRun).toBe(true);
    expect(dry.deleted).toEqual({ directory: 2, blob: 1, chunk: chunks });
    expect(await count(schema, "directories")).toBe(2);
    expect(await count(schema, "chunks")).toBe(chunks);
    const real = await gc.collect({ graceMs: 0 });
    expect(real.deleted).toEqual(dry.deleted);
    expect(real.deletedBytes).toBe(dry.deletedBytes);
  });

  it("keeps `keep` roots (a directory, a blob) and reports the ones that name nothing", async () => {
    const { service, blobs, gc, schema } = await openAll();
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const tree = treeWith(blob, 3000, "k");
    await upload(service, tree.directories);
    const loose = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const unknown = Digest.of(randomBytes(8));

    const report = await gc.collect({ graceMs: 0, keep: [tree.root, loose, unknown] });

    expect(report.roots).toBe(3);
    expect(report.missingRoots.map((d) => d.hex)).toEqual([unknown.hex]);
    expect(report.deleted).toEqual({ directory: 0, blob: 0, chunk: 0 });
    expect(await digestsIn(schema, "blobs")).toEqual(new Set([blob.hex, loose.hex]));
  });

  it("spares objects an upload holds while their delete comes (it skips locked rows, and counts them spared)", async () => {
    const { service, blobs, gc, schema } = await openAll();
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const tree = treeWith(blob, 3000, "race");
    await upload(service, tree.directories);
    await ageEverything(schema);
    const objects = 2 + 1 + (await count(schema, "chunks"));
    // An upload touching the whole tree, not committed yet: the mark cannot see its touches.
    const holder = await stores.admin.connect();
    try {
      await holder.query("BEGIN");
      for (const table of ["directories", "blobs", "chunks"])
        await holder.query(`UPDATE "${schema}".${table} SET used_at = clock_timestamp()`);

      const report = await gc.collect({ graceMs: 0 });

      expect(report.deleted).toEqual({ directory: 0, blob: 0, chunk: 0 });
      expect(report.spared).toBe(objects);
      await holder.query("COMMIT");
    } finally {
      holder.release();
    }
    expect(await count(schema, "directories")).toBe(2);
    // Committed, the touches make it young: the next collection does not even list it.
    const next = await gc.collect({ graceMs: 60_000 });
    expect(next.spared + next.deleted.directory).toBe(0);
  });

  it("agrees with core's in-process collector over the same store (which lists it page by page)", async () => {
    const { service, blobStore, blobs, refs, gc, schema } = await openAll();
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const kept = treeWith(blob, 3000, "kept");
    await upload(service, kept.directories);
    await refs.set("kept", kept.root);
    await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    // More than a page (4 096) of garbage directories.
    const leaves = Array.from({ length: 5000 }, (_, i) => makeDirectory({ symlinks: [makeSymlinkNode(`l${i}`, "x")] }));
    const top = makeDirectory({
      directories: leaves.map((l, i) =>
        makeDirectoryNode(`d${String(i).padStart(4, "0")}`, directoryDigest(l), directorySize(l)),
      ),
    });
    await upload(service, [...leaves, top]);
    await ageEverything(schema);
    const inProcess = new InProcessCollector({
      objects: new PostgresCollectableStore(service.store),
      directories: service.store,
      blobs: blobStore,
      refs: PostgresRefStore.sharing(service.store),
    });

    const theirs = await inProcess.collect({ graceMs: 0, dryRun: true });
    const ours = await gc.collect({ graceMs: 0, dryRun: true });

    expect(ours.deleted).toEqual(theirs.deleted);
    expect(ours.deleted.directory).toBe(5001);
    expect(ours.deletedBytes).toBe(theirs.deletedBytes);
    expect(ours.live.directory).toBe(theirs.live.directory);
    expect(ours.roots).toBe(theirs.roots);
  });

  it("deleteUnusedSince deletes only objects still unused since the cutoff", async () => {
    const { service, blobs, schema } = await openAll();
    const objects = new PostgresCollectableStore(service.store);
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const tree = treeWith(blob, 3000, "cond");
    await upload(service, tree.directories);
    await ageEverything(schema);
    const cutoff = await objects.startCollection();
    const listed: Digest[] = [];
    for await (const o of objects.listObjects("directory")) {
      expect(o.usedAt).toBeLessThan(cutoff);
      listed.push(o.digest);
    }
    expect(listed).toHaveLength(2);
    // Listed as garbage, then used (an upload relying on it) before its turn.
    expect(await objects.touch("directory", [tree.root])).toEqual([true]);

    const deleted = await objects.deleteUnusedSince("directory", listed, cutoff);

    expect(deleted.map((o) => o.digest.hex)).toEqual([directoryDigest(tree.directories[0]).hex]);
    expect(await digestsIn(schema, "directories")).toEqual(new Set([tree.root.hex]));
  });

  it("a delete skips a row an upload holds locked (the upload commits it, touched)", async () => {
    const { service, schema } = await openAll();
    const objects = new PostgresCollectableStore(service.store);
    const dir = makeDirectory({ symlinks: [makeSymlinkNode("l", "x")] });
    const digest = await upload(service, [dir]);
    await ageEverything(schema);
    const cutoff = await objects.startCollection();
    const holder = await stores.admin.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`UPDATE "${schema}".directories SET used_at = clock_timestamp() WHERE digest = $1`, [
        Buffer.from(digest.bytes),
      ]);
      // Does not wait for the lock: the row is skipped.
      expect(await objects.deleteUnusedSince("directory", [digest], cutoff)).toEqual([]);
      await holder.query("COMMIT");
    } finally {
      holder.release();
    }
    expect(await objects.deleteUnusedSince("directory", [digest], cutoff)).toEqual([]);
    expect(await service.get(digest)).toBeDefined();
  });

  it("deletes parents before children: stopped after the first batch, no stored directory names a deleted one", async () => {
    const { service, gc, schema } = await openAll();
    // A chain of 2500 directories: three batches of deletes, deepest last.
    let child: Directory = makeDirectory({ symlinks: [makeSymlinkNode("end", "x")] });
    const chain = [child];
    for (let i = 0; i < 2499; i++) {
      child = makeDirectory({ directories: [makeDirectoryNode("d", directoryDigest(child), directorySize(child))] });
      chain.push(child);
    }
    await upload(service, chain);
    await ageEverything(schema);
    const abort = new AbortController();
    const progress: CollectProgress[] = [];
    const run = gc.collect({
      graceMs: 0,
      signal: abort.signal,
      onProgress: (p) => {
        progress.push(p);
        if (p.phase === "sweep" && p.kind === "directory" && p.done > 0) abort.abort(new Error("stop"));
      },
    });
    await expect(run).rejects.toThrow(AbortError);
    const left = await count(schema, "directories");
    expect(left).toBe(1500);
    // Every directory left names only stored ones: the deleted 1000 were the top of the chain.
    const { rows } = await stores.admin.query(
      `SELECT count(*)::int AS n FROM "${schema}".directories d
       WHERE d.children <> ''::bytea
         AND NOT EXISTS (SELECT 1 FROM "${schema}".directories c WHERE c.digest = d.children)`,
    );
    expect(rows[0].n).toBe(0);
    expect(progress.find((p) => p.phase === "sweep" && p.kind === "directory")?.total).toBe(2500);
    // The next collection finishes the job.
    expect((await gc.collect({ graceMs: 0 })).deleted.directory).toBe(1500);
  });

  it("an abort cancels the statement in flight, deletes nothing, and the next collection works", async () => {
    const { service, gc, schema } = await openAll();
    await upload(service, [makeDirectory({ symlinks: [makeSymlinkNode("l", "x")] })]);
    await ageEverything(schema);
    // The mark's first statement reads the refs: a lock held on them makes it wait, in the server.
    const holder = await stores.admin.connect();
    const abort = new AbortController();
    let run: Promise<unknown> | undefined;
    try {
      await holder.query("BEGIN");
      await holder.query(`LOCK TABLE "${schema}".refs IN ACCESS EXCLUSIVE MODE`);
      run = gc.collect({ graceMs: 0, signal: abort.signal });
      run.catch(() => undefined);
      await waitFor(async () => {
        const { rows } = await stores.admin.query(
          `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%castore_gc_roots%'`,
        );
        return rows.length > 0;
      }, "the collection waiting on the refs");
      abort.abort(new Error("stop"));
      // Rejects while the lock is still held: the statement was cancelled, not finished.
      await expect(run).rejects.toThrow(AbortError);
    } finally {
      await holder.query("ROLLBACK");
      holder.release();
    }
    expect(await count(schema, "directories")).toBe(1);
    expect((await gc.collect({ graceMs: 0 })).deleted.directory).toBe(1);
  });

  it("stops, deleting nothing, when a live directory's children are unknown", async () => {
    const { service, refs, gc, schema } = await openAll();
    const dir = makeDirectory({ symlinks: [makeSymlinkNode("l", "x")] });
    const digest = await upload(service, [dir]);
    await refs.set("r", digest);
    await stores.admin.query(`UPDATE "${schema}".directories SET children = NULL`);
    await upload(service, [makeDirectory({ symlinks: [makeSymlinkNode("other", "y")] })]);
    await ageEverything(schema);
    await expect(gc.collect({ graceMs: 0 })).rejects.toThrow(BackendError);
    await expect(gc.collect({ graceMs: 0 })).rejects.toThrow(/no children recorded/);
    expect(await count(schema, "directories")).toBe(2);
  });

  it("stops on a live directory whose bytes cannot be read", async () => {
    const { service, refs, gc, schema } = await openAll();
    const digest = await upload(service, [makeDirectory({ symlinks: [makeSymlinkNode("l", "x")] })]);
    await refs.set("r", digest);
    await stores.admin.query(`UPDATE "${schema}".directories SET bytes = '\\xff'::bytea`);
    await expect(gc.collect({ graceMs: 0 })).rejects.toThrow(CorruptionError);
  });

  it("refuses a negative grace with a RangeError naming it", async () => {
    const { gc } = await openAll();
    await expect(gc.collect({ graceMs: -1 })).rejects.toThrow(/grace must be a non-negative number.*-1/);
  });

  it("is opened by URL for both schemes", async () => {
    const schema = stores.freshSchema();
    for (const scheme of ["postgres", "postgresql"]) {
      const url = stores.url({ schema }).replace(/^postgres(ql)?:/, `${scheme}:`);
      const gc = await openGarbageCollector(url);
      try {
        expect(gc).toBeInstanceOf(PostgresGarbageCollector);
        expect((await gc.collect({ graceMs: 0 })).deleted).toEqual({ directory: 0, blob: 0, chunk: 0 });
      } finally {
        await gc.close();
      }
      const refStore = await openRefStore(url);
      expect(refStore).toBeInstanceOf(PostgresRefStore);
      await refStore.close();
    }
  });
});

describe("the touch rules (spec §10.2)", () => {
  it("every upload path marks entries already stored as used now (a)", async () => {
    for (const uploadMethod of ["unnest", "copy", "merge"] as const) {
      const service = stores.open({ uploadMethod });
      const schema = service.store.schema;
      const dir = makeDirectory({ symlinks: [makeSymlinkNode("l", uploadMethod)] });
      const digest = await upload(service, [dir]);
      await ageEverything(schema);
      const before = await usedAt(schema, "directories", digest);
      const parent = makeDirectory({ directories: [makeDirectoryNode("c", digest, directorySize(dir))] });
      await upload(service, [dir, parent]);
      expect(await usedAt(schema, "directories", digest), uploadMethod).toBeGreaterThan(before + 30 * 60 * 1000);
    }
  });

  it("putChunk, putManifest and has mark what they find used now (b, c, d); has marks a blob's chunks", async () => {
    const { blobStore, blobs, schema } = await openAll();
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const chunks = (await blobStore.getManifest(blob))!;
    expect(chunks.length).toBeGreaterThan(1);
    await ageEverything(schema);
    const old = Date.now() - 30 * 60 * 1000;

    expect(await blobs.has([blob])).toEqual([true]);
    expect(await usedAt(schema, "blobs", blob)).toBeGreaterThan(old);
    for (const c of chunks) expect(await usedAt(schema, "chunks", c.digest)).toBeGreaterThan(old);

    await ageEverything(schema);
    await blobStore.putChunk(chunks[0].digest, new Uint8Array(0));
    await blobStore.putManifest(blob, chunks);
    expect(await usedAt(schema, "chunks", chunks[0].digest)).toBeGreaterThan(old);
    expect(await usedAt(schema, "chunks", chunks[1].digest)).toBeLessThan(old);
    expect(await usedAt(schema, "blobs", blob)).toBeGreaterThan(old);
    // The stored chunk kept its bytes, the manifest its list.
    expect(await blobStore.chunkSize(chunks[0].digest)).toBe(chunks[0].size);
    expect(await blobStore.getManifest(blob)).toEqual(chunks);
  });

  it("a ref's set checks the whole tree is stored and marks it used", async () => {
    const { service, blobs, refs, schema } = await openAll();
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const tree = treeWith(blob, 3000, "p");
    await upload(service, tree.directories);
    await ageEverything(schema);
    const old = Date.now() - 30 * 60 * 1000;
    await refs.set("p", tree.root);
    for (const d of tree.directories)
      expect(await usedAt(schema, "directories", directoryDigest(d))).toBeGreaterThan(old);
    expect(await usedAt(schema, "blobs", blob)).toBeGreaterThan(old);
    // A tree whose blob is gone is refused.
    const missing = treeWith(Digest.of(randomBytes(4)), 4, "m");
    await upload(service, missing.directories);
    await expect(refs.set("m", missing.root)).rejects.toThrow(ClosureError);
    expect(await refs.get("m")).toBeUndefined();
  });
});

describe("a ref's set against a collection's start", () => {
  it("a collection that starts between the tree's protection and the ref's write makes the set protect again", async () => {
    const { service, blobs, gc, schema } = await openAll();
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const tree = treeWith(blob, 3000, "fence");
    await upload(service, tree.directories);
    await ageEverything(schema);
    const objects = new PostgresCollectableStore(service.store);
    const parts = { objects, directories: service.store, blobs: PostgresBlobStore.sharing(service.store) };
    const reports: Awaited<ReturnType<typeof gc.collect>>[] = [];
    let protections = 0;
    const refs = postgresRefService(service, blobs, {
      // The tree is checked and marked; then, before the ref is written, a collection with no grace
      // starts: it reads no ref, and everything was marked before its cutoff.
      protect: async (root, opts) => {
        protections++;
        await protectClosure(parts, root, opts);
        if (protections === 1) {
          reports.push(await gc.collect({ graceMs: 0 }));
        }
      },
    });

    await expect(refs.set("fenced", tree.root)).rejects.toThrow(ClosureError);

    expect(protections).toBe(2);
    expect(reports[0].deleted.directory).toBe(2);
    expect(await refs.get("fenced")).toBeUndefined();
    const { rows } = await stores.admin.query(`SELECT started::int AS n FROM "${schema}".collections`);
    expect(rows).toEqual([{ n: 1 }]);
  });

  it("a ref set while no collection starts is protected once", async () => {
    const { service, blobs } = await openAll();
    const blob = await writeBlob(blobs, new Uint8Array(randomBytes(3000)));
    const tree = treeWith(blob, 3000, "once");
    await upload(service, tree.directories);
    let protections = 0;
    const parts = {
      objects: new PostgresCollectableStore(service.store),
      directories: service.store,
      blobs: PostgresBlobStore.sharing(service.store),
    };
    const refs = postgresRefService(service, blobs, {
      protect: async (root, opts) => {
        protections++;
        await protectClosure(parts, root, opts);
      },
    });
    await refs.set("once", tree.root);
    expect(protections).toBe(1);
    expect((await refs.get("once"))?.hex).toBe(tree.root.hex);
  });
});

describe("castore_directory_scan", () => {
  it("gives core's directorySize and the file digests, in order, for stored directories", async () => {
    const { service, schema } = await openAll();
    const leaf = makeDirectory({ files: [makeFileNode("x", Digest.of(randomBytes(3)), 2 ** 40)] });
    const files = Array.from({ length: 300 }, (_, i) => Digest.of(new Uint8Array([i, i >> 8])));
    const dir = makeDirectory({
      directories: [
        makeDirectoryNode("big", Digest.of(randomBytes(3)), 2n ** 62n),
        makeDirectoryNode("biggest", Digest.of(randomBytes(3)), 2n ** 64n - 1n),
        makeDirectoryNode("border", Digest.of(randomBytes(3)), 2n ** 56n + 5n),
        makeDirectoryNode("leaf", directoryDigest(leaf), directorySize(leaf)),
      ],
      files: files.map((d, i) => makeFileNode(`f${String(i).padStart(3, "0")}`, d, i * 1000, i % 2 === 0)),
      symlinks: [makeSymlinkNode("s", "t")],
    });
    const bytes = encodeDirectory(dir);
    const { rows } = await stores.admin.query(
      `SELECT tree_size::text AS size, files FROM "${schema}".castore_directory_scan($1)`,
      [Buffer.from(bytes)],
    );
    expect(rows[0].size).toBe(directorySize(decodeDirectory(bytes)).toString());
    expect((rows[0].files as Buffer[]).map((f) => Digest.fromBytes(f).hex)).toEqual(files.map((d) => d.hex));
    void service;
  });

  it("gives NULLs for bytes that are not a directory", async () => {
    const { schema } = await openAll();
    for (const bad of ["\\xff", "\\x0a05", "\\x0a0212", "\\x2201"]) {
      const { rows } = await stores.admin.query(
        `SELECT tree_size, files FROM "${schema}".castore_directory_scan($1::bytea)`,
        [bad],
      );
      expect(rows[0], bad).toEqual({ tree_size: null, files: null });
    }
  });
});

describe("refs", () => {
  it("compare-and-set is atomic: of 20 concurrent creations exactly one wins", async () => {
    const { service } = await openAll();
    // The refs alone: digests that name no stored tree, so no protection.
    const store = PostgresRefStore.sharing(service.store, { protect: async () => undefined });
    const targets = Array.from({ length: 20 }, (_, i) => Digest.of(new Uint8Array([i])));
    const results = await Promise.all(targets.map((d) => store.compareAndSetRef("race", d, null)));
    const winners = results.filter((r) => r.swapped);
    expect(winners).toHaveLength(1);
    const held = await store.getRef("race");
    expect(targets.findIndex((d) => d.equals(held!))).toBe(results.findIndex((r) => r.swapped));
    for (const r of results) if (!r.swapped) expect(r.current).toBeDefined();
  });

  it("lists in byte order, under a prefix, across pages", async () => {
    const { service } = await openAll();
    // The refs alone: digests that name no stored tree, so no protection.
    const store = PostgresRefStore.sharing(service.store, { protect: async () => undefined });
    const d = Digest.of(new Uint8Array([1]));
    const names = ["B", "a", "a-c", "a/a", "a/b", "a0", "b"];
    for (const n of names) await store.compareAndSetRef(n, d, undefined);
    for (let i = 0; i < 1100; i++) await store.compareAndSetRef(`many/${String(i).padStart(4, "0")}`, d, null);
    const list = async (prefix?: string) => {
      const out: string[] = [];
      for await (const r of store.listRefs({ prefix })) out.push(r.name);
      return out;
    };
    expect((await list()).filter((n) => !n.startsWith("many/"))).toEqual(["B", "a", "a-c", "a/a", "a/b", "a0", "b"]);
    expect(await list("a/")).toEqual(["a/a", "a/b"]);
    expect(await list("a")).toEqual(["a", "a-c", "a/a", "a/b", "a0"]);
    const many = await list("many/");
    expect(many).toHaveLength(1100);
    expect(many.at(-1)).toBe("many/1099");
  });

  it("RefService: a lost compare-and-swap is a ConflictError naming what the ref holds", async () => {
    const { service, refs } = await openAll();
    const a = await upload(service, [makeDirectory({ symlinks: [makeSymlinkNode("a", "a")] })]);
    const b = await upload(service, [makeDirectory({ symlinks: [makeSymlinkNode("b", "b")] })]);
    await refs.set("x", a, { expect: null });
    await expect(refs.set("x", b, { expect: null })).rejects.toThrow(ConflictError);
    await expect(refs.set("x", b, { expect: null })).rejects.toThrow(a.hex);
    await refs.set("x", b, { expect: a });
    expect((await refs.get("x"))?.hex).toBe(b.hex);
    expect(await refs.delete("x", { expect: b })).toBe(true);
    expect(await refs.get("x")).toBeUndefined();
  });
});

describe("layout version 5", () => {
  it("upgrades a version 4 schema in place: used_at is the time of the upgrade, refs and the scanner appear", async () => {
    const first = stores.open();
    const schema = first.store.schema;
    const digest = await upload(first, [makeDirectory({ symlinks: [makeSymlinkNode("old", "x")] })]);
    await first.close();
    // Back to what castore with layout version 4 left.
    await stores.admin.query(
      `ALTER TABLE "${schema}".directories DROP COLUMN used_at;
       ALTER TABLE "${schema}".blobs DROP COLUMN used_at;
       ALTER TABLE "${schema}".chunks DROP COLUMN used_at;
       DROP TABLE "${schema}".refs, "${schema}".collections;
       DROP FUNCTION "${schema}".castore_directory_scan;
       DELETE FROM "${schema}".schema_version;
       INSERT INTO "${schema}".schema_version (version) VALUES (4)`,
    );
    const before = Date.now();
    const service = stores.track(PostgresDirectoryService.open(stores.url({ schema })));
    await service.store.init();
    const { rows } = await stores.admin.query(`SELECT version FROM "${schema}".schema_version ORDER BY version`);
    expect(rows).toEqual([{ version: 4 }, { version: SCHEMA_VERSION }]);
    expect(SCHEMA_VERSION).toBe(5);
    expect(await usedAt(schema, "directories", digest)).toBeGreaterThanOrEqual(before - 1000);
    expect(await count(schema, "refs")).toBe(0);
    expect(await count(schema, "collections")).toBe(1);
    const gc = PostgresGarbageCollector.sharing(service.store);
    expect((await gc.collect({ graceMs: 0 })).deleted.directory).toBe(1);
  });
});
