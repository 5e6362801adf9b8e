import { randomBytes } from "node:crypto";
import {
  AbortError,
  BackendError,
  ChunkedBlobService,
  CorruptionError,
  Digest,
  fixtures,
  openBlobService,
  type ChunkMeta,
} from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import { PostgresBlobStore, PostgresDirectoryService, SCHEMA_VERSION } from "./index.js";
import { countQueries, postgresTestStoresForFile } from "./test-postgres.js";

const stores = postgresTestStoresForFile();

/** A chunk of `size` random bytes and its metadata. */
function chunk(size: number): { bytes: Uint8Array; meta: ChunkMeta } {
  const bytes = new Uint8Array(randomBytes(size));
  return { bytes, meta: { digest: Digest.of(bytes), size } };
}

/** Bytes as a short comparable text (length and BLAKE3 digest), so a failure does not print a megabyte of hex. */
function hex(bytes: Uint8Array | undefined): string | undefined {
  return bytes && `${bytes.length} bytes, blake3 ${Digest.of(bytes).hex}`;
}

/** The manifest as plain values, for toEqual. */
function plain(chunks: readonly ChunkMeta[] | undefined): { digest: string; size: number }[] | undefined {
  return chunks?.map((c) => ({ digest: c.digest.hex, size: c.size }));
}

/** Any digest: the store never checks that a key is the hash of what it stores. */
function someDigest(): Digest {
  return Digest.of(randomBytes(16));
}

async function count(schema: string, table: string): Promise<number> {
  const { rows } = await stores.admin.query(`SELECT count(*)::int AS n FROM "${schema}".${table}`);
  return rows[0].n;
}

describe("schema", () => {
  it("creates chunks, blobs and blob_chunks beside directories, each keyed as documented", async () => {
    const store = stores.openBlobs();
    const schema = store.db.schema;
    await store.has([someDigest()]);
    const columns = await stores.admin.query(
      `SELECT table_name, column_name, data_type FROM information_schema.columns
       WHERE table_schema = $1 AND table_name IN ('chunks', 'blobs', 'blob_chunks')
       ORDER BY table_name, ordinal_position`,
      [schema],
    );
    expect(columns.rows).toEqual([
      { table_name: "blob_chunks", column_name: "blob", data_type: "bytea" },
      { table_name: "blob_chunks", column_name: "idx", data_type: "integer" },
      { table_name: "blob_chunks", column_name: "chunk", data_type: "bytea" },
      { table_name: "blob_chunks", column_name: "size", data_type: "integer" },
      { table_name: "blobs", column_name: "digest", data_type: "bytea" },
      { table_name: "blobs", column_name: "size", data_type: "bigint" },
      { table_name: "blobs", column_name: "chunk_count", data_type: "integer" },
      { table_name: "blobs", column_name: "used_at", data_type: "timestamp with time zone" },
      { table_name: "chunks", column_name: "digest", data_type: "bytea" },
      { table_name: "chunks", column_name: "data", data_type: "bytea" },
      { table_name: "chunks", column_name: "used_at", data_type: "timestamp with time zone" },
    ]);
    for (const [table, key] of [
      ["chunks", ["digest"]],
      ["blobs", ["digest"]],
      ["blob_chunks", ["blob", "idx"]],
    ] as const) {
      const pk = await stores.admin.query(
        `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)`,
        [`"${schema}".${table}`],
      );
      expect(pk.rows.map((r) => r.attname)).toEqual(key);
    }
    // Chunk bytes are stored uncompressed ("e": external).
    const storage = await stores.admin.query(
      `SELECT attstorage FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'data'`,
      [`"${schema}".chunks`],
    );
    expect(storage.rows).toEqual([{ attstorage: "e" }]);
    const versions = await stores.admin.query(`SELECT version FROM "${schema}".schema_version`);
    expect(versions.rows).toEqual([{ version: SCHEMA_VERSION }]);
    expect(SCHEMA_VERSION).toBe(5);
  });

  it("upgrades a schema of layout version 1 (directories only), keeping its directories", async () => {
    const schema = stores.freshSchema();
    const directories = stores.track(PostgresDirectoryService.open(stores.url({ schema })));
    await directories.store.init();
    // Back to what castore with layout version 1 left: no blob tables, version 1 recorded.
    await stores.admin.query(
      `DROP TABLE "${schema}".chunks, "${schema}".blobs, "${schema}".blob_chunks;
       DELETE FROM "${schema}".schema_version;
       INSERT INTO "${schema}".schema_version (version) VALUES (1)`,
    );
    const putter = directories.putMultipleStart();
    await putter.put(fixtures.DIRECTORY_A);
    const root = await putter.close();

    const blobs = stores.openBlobs(schema);
    const c = chunk(100);
    await blobs.putChunk(c.meta.digest, c.bytes);
    expect(hex(await blobs.getChunk(c.meta.digest))).toBe(hex(c.bytes));
    const versions = await stores.admin.query(`SELECT version FROM "${schema}".schema_version ORDER BY version`);
    // The DDL steps up to the children column (3), then the fill of the stored rows' children (4),
    // then garbage collection's columns and refs (5, whose DDL went in with 3).
    expect(versions.rows).toEqual([{ version: 1 }, { version: 3 }, { version: 4 }, { version: 5 }]);
    const reopened = stores.track(PostgresDirectoryService.open(stores.url({ schema })));
    expect(await reopened.get(root)).toEqual(fixtures.DIRECTORY_A);
  });
});

describe("PostgresBlobStore", () => {
  it("round-trips chunks of 0 bytes to 512 KiB and manifests of 0, 1 and many chunks", async () => {
    const store = stores.openBlobs();
    const chunks = [chunk(0), chunk(1), chunk(128 * 1024), chunk(512 * 1024)];
    for (const c of chunks) await store.putChunk(c.meta.digest, c.bytes);
    for (const c of chunks) expect(hex(await store.getChunk(c.meta.digest))).toBe(hex(c.bytes));
    for (const c of chunks) expect(await store.chunkSize(c.meta.digest)).toBe(c.meta.size);

    const blob = someDigest();
    await store.putManifest(
      blob,
      chunks.map((c) => c.meta),
    );
    expect(plain(await store.getManifest(blob))).toEqual(plain(chunks.map((c) => c.meta)));

    // A blob of one chunk has the chunk's digest: the blob row and the chunk row live side by side.
    const single = chunks[2].meta;
    await store.putManifest(single.digest, [single]);
    expect(plain(await store.getManifest(single.digest))).toEqual(plain([single]));
    expect(hex(await store.getChunk(single.digest))).toBe(hex(chunks[2].bytes));

    await store.putManifest(fixtures.EMPTY_BLOB_DIGEST, []);
    expect(await store.getManifest(fixtures.EMPTY_BLOB_DIGEST)).toEqual([]);

    const schema = store.db.schema;
    const { rows } = await stores.admin.query(
      `SELECT size::text AS size, chunk_count FROM "${schema}".blobs WHERE digest = $1`,
      [Buffer.from(blob.bytes)],
    );
    expect(rows).toEqual([{ size: String(1 + 128 * 1024 + 512 * 1024), chunk_count: 4 }]);
    expect(await count(schema, "blob_chunks")).toBe(5);
  });

  it("returns undefined for an absent chunk, manifest or chunk size", async () => {
    const store = stores.openBlobs();
    const absent = someDigest();
    expect(await store.getChunk(absent)).toBeUndefined();
    expect(await store.getManifest(absent)).toBeUndefined();
    expect(await store.chunkSize(absent)).toBeUndefined();
  });

  it("has: a boolean per digest, in order, for blobs, chunks, both and neither, in one query", async () => {
    const store = stores.openBlobs();
    const onlyChunk = chunk(10);
    const both = chunk(20);
    const onlyBlob = someDigest();
    const absent = someDigest();
    await store.putChunk(onlyChunk.meta.digest, onlyChunk.bytes);
    await store.putChunk(both.meta.digest, both.bytes);
    await store.putManifest(both.meta.digest, [both.meta]);
    await store.putManifest(onlyBlob, [onlyChunk.meta]);
    const again = stores.openBlobs(store.db.schema);
    const queries = countQueries(again);
    await again.db.init();
    const before = queries.count;
    expect(
      await again.has([absent, onlyChunk.meta.digest, onlyBlob, both.meta.digest, absent, onlyChunk.meta.digest]),
    ).toEqual([false, true, true, true, false, true]);
    expect(queries.count - before).toBe(1);
    expect(await again.has([])).toEqual([]);
    expect(queries.count - before).toBe(1);
  });

  it("costs one statement per operation once the schema is checked (one query on first use)", async () => {
    const first = stores.openBlobs();
    await first.db.init();
    const store = stores.openBlobs(first.db.schema);
    const queries = countQueries(store);
    const c = chunk(1000);
    const blob = someDigest();
    const steps: [string, () => Promise<unknown>, number][] = [
      ["putChunk (and the schema check)", () => store.putChunk(c.meta.digest, c.bytes), 2],
      ["getChunk", () => store.getChunk(c.meta.digest), 1],
      ["chunkSize", () => store.chunkSize(c.meta.digest), 1],
      ["putManifest", () => store.putManifest(blob, [c.meta, c.meta]), 1],
      ["getManifest", () => store.getManifest(blob), 1],
      ["has", () => store.has([blob, c.meta.digest, someDigest()]), 1],
    ];
    for (const [name, run, expected] of steps) {
      const before = queries.count;
      await run();
      expect({ name, queries: queries.count - before }).toEqual({ name, queries: expected });
    }
  });

  it("puts are idempotent and keep what was stored first; a second list never mixes with the first", async () => {
    const store = stores.openBlobs();
    const c = chunk(100);
    const d = chunk(200);
    await store.putChunk(c.meta.digest, c.bytes);
    await store.putChunk(c.meta.digest, c.bytes);
    await store.putChunk(c.meta.digest, new Uint8Array(7));
    expect(hex(await store.getChunk(c.meta.digest))).toBe(hex(c.bytes));

    const blob = someDigest();
    await store.putManifest(blob, [c.meta]);
    await store.putManifest(blob, [c.meta]);
    await store.putManifest(blob, [d.meta, d.meta, c.meta]);
    expect(plain(await store.getManifest(blob))).toEqual(plain([c.meta]));
    expect(await count(store.db.schema, "blob_chunks")).toBe(1);
    expect(await count(store.db.schema, "chunks")).toBe(1);
  });

  it("takes concurrent writers of the same chunks and blob, each with its own pool", async () => {
    const first = stores.openBlobs();
    await first.db.init();
    const schema = first.db.schema;
    const writers = [first, ...Array.from({ length: 5 }, () => stores.openBlobs(schema))];
    const chunks = Array.from({ length: 6 }, (_, i) => chunk(64 * 1024 + i));
    const blob = someDigest();
    await Promise.all(
      writers.map(async (store, w) => {
        // Every writer stores every chunk, starting at a different one, then its own list for the same blob.
        for (let i = 0; i < chunks.length; i++) {
          const c = chunks[(i + w) % chunks.length];
          await store.putChunk(c.meta.digest, c.bytes);
        }
        await store.putManifest(
          blob,
          chunks.slice(0, w + 1).map((c) => c.meta),
        );
      }),
    );
    expect(await count(schema, "chunks")).toBe(chunks.length);
    for (const c of chunks) expect(hex(await first.getChunk(c.meta.digest))).toBe(hex(c.bytes));
    // One writer's list won, whole.
    const list = await first.getManifest(blob);
    expect(list!.length).toBeGreaterThan(0);
    expect(plain(list)).toEqual(plain(chunks.slice(0, list!.length).map((c) => c.meta)));
    expect(await count(schema, "blob_chunks")).toBe(list!.length);
  });

  it("reports a chunk list changed behind its back as CorruptionError naming the blob", async () => {
    const store = stores.openBlobs();
    const schema = store.db.schema;
    const a = chunk(10);
    const b = chunk(20);
    const blob = someDigest();
    await store.putManifest(blob, [a.meta, b.meta]);
    await stores.admin.query(`DELETE FROM "${schema}".blob_chunks WHERE idx = 1`);
    await expect(store.getManifest(blob)).rejects.toThrow(CorruptionError);
    await stores.admin.query(`INSERT INTO "${schema}".blob_chunks (blob, idx, chunk, size) VALUES ($1, 2, $2, 20)`, [
      Buffer.from(blob.bytes),
      Buffer.from(b.meta.digest.bytes),
    ]);
    await expect(store.getManifest(blob)).rejects.toThrow(CorruptionError);
    await stores.admin.query(`UPDATE "${schema}".blob_chunks SET idx = 1 WHERE idx = 2`);
    expect(plain(await store.getManifest(blob))).toEqual(plain([a.meta, b.meta]));
    await stores.admin.query(`UPDATE "${schema}".blob_chunks SET size = 21 WHERE idx = 1`);
    await expect(store.getManifest(blob)).rejects.toThrow(blob.hex);
  });

  it("refuses a chunk size that a row cannot hold, storing nothing", async () => {
    const store = stores.openBlobs();
    const blob = someDigest();
    await expect(store.putManifest(blob, [{ digest: blob, size: 2 ** 31 }])).rejects.toThrow(
      /not a PostgreSQL integer/,
    );
    expect(await store.getManifest(blob)).toBeUndefined();
  });

  it("shares the schema with the directory service of the same URL, and a directory store's pool", async () => {
    const schema = stores.freshSchema();
    const directories = stores.track(PostgresDirectoryService.open(stores.url({ schema })));
    const blobs = stores.openBlobs(schema);
    const c = chunk(50);
    await blobs.putChunk(c.meta.digest, c.bytes);
    const putter = directories.putMultipleStart();
    await putter.put(fixtures.DIRECTORY_A);
    const root = await putter.close();

    const shared = PostgresBlobStore.sharing(directories.store);
    expect(shared.db.pool).toBe(directories.store.pool);
    expect(hex(await shared.getChunk(c.meta.digest))).toBe(hex(c.bytes));
    await shared.close();
    await expect(shared.has([c.meta.digest])).rejects.toThrow(BackendError);
    // Closing the sharing store left the directory store open.
    expect(await directories.get(root)).toEqual(fixtures.DIRECTORY_A);
  });

  it("stops at an aborted signal and refuses work after close with a BackendError", async () => {
    const store = stores.openBlobs();
    const c = chunk(10);
    const controller = new AbortController();
    controller.abort();
    await expect(store.putChunk(c.meta.digest, c.bytes, { signal: controller.signal })).rejects.toThrow(AbortError);
    expect(await store.getChunk(c.meta.digest)).toBeUndefined();
    await store.close();
    await store.close();
    await expect(store.getChunk(c.meta.digest)).rejects.toThrow(BackendError);
    await expect(store.has([c.meta.digest])).rejects.toThrow(/store is closed/);
  });

  it("is registered for postgres: and postgresql: URLs, in the URL's schema", async () => {
    for (const scheme of ["postgres:", "postgresql:"]) {
      const schema = stores.freshSchema();
      const url = new URL(stores.url({ schema }));
      url.protocol = scheme;
      const blobs = await openBlobService(url.href);
      try {
        expect(blobs).toBeInstanceOf(ChunkedBlobService);
        const store = (blobs as ChunkedBlobService).store;
        expect(store).toBeInstanceOf(PostgresBlobStore);
        expect((store as PostgresBlobStore).db.schema).toBe(schema);
        const writer = blobs.openWriter();
        await writer.write(new TextEncoder().encode("hello blobs"));
        const { digest } = await writer.close();
        // A blob of one chunk is that chunk, in the URL's schema: no manifest row.
        expect(await count(schema, "chunks")).toBe(1);
        expect(await count(schema, "blobs")).toBe(0);
        expect(await blobs.has([digest])).toEqual([true]);
      } finally {
        await blobs.close();
      }
    }
  });
});
