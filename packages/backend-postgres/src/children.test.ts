/**
 * The directories' `children` column (their child edges): written with
 * every upload, filled in for a database of an older layout, and read by
 * getRecursive's one recursive statement.
 */
import { deepChain, generateTree } from "@castore-ts/conformance";
import {
  breadthFirst,
  CorruptionError,
  decodeDirectory,
  Digest,
  directoryDigest,
  directorySize,
  encodeDirectory,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  type Directory,
  type DirectoryService,
} from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import { childEdges } from "./postgres-children.js";
import { PostgresDirectoryService, SCHEMA_VERSION, type UploadMethod } from "./index.js";
import { countQueries, postgresTestStoresForFile } from "./test-postgres.js";

const stores = postgresTestStoresForFile();

async function upload(service: DirectoryService, directories: Directory[]): Promise<Digest> {
  const putter = service.putMultipleStart();
  for (const d of directories) await putter.put(d);
  return putter.close();
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const hexes = (ds: Directory[]) => ds.map((d) => directoryDigest(d).hex);

/** A small deterministic random generator (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A random DAG of `n` directories, leaves to root: each refers to up to 4
 * earlier ones, often the same ones as others do (diamonds) and from
 * different depths, sometimes one child under two names. The last one refers
 * to every directory no other refers to, so it is the only root.
 */
function randomDag(n: number, seed: number): { directories: Directory[]; root: Digest } {
  const random = seeded(seed);
  const made: Directory[] = [];
  const referenced = new Set<number>();
  const node = (name: string, i: number) => makeDirectoryNode(name, directoryDigest(made[i]), directorySize(made[i]));
  for (let i = 0; i < n - 1; i++) {
    const children: number[] = [];
    if (i > 0) {
      const count = Math.floor(random() * 5);
      for (let k = 0; k < count; k++) children.push(Math.floor(random() * i));
      if (children.length > 0 && random() < 0.2) children.push(children[0]); // one child under two names
    }
    children.forEach((c) => referenced.add(c));
    made.push(
      makeDirectory({
        directories: children.map((c, k) => node(`d${String(k).padStart(2, "0")}`, c)),
        files: [makeFileNode(`tag${i}`, fixtures.EMPTY_BLOB_DIGEST, 0)],
      }),
    );
  }
  const roots = made.map((_, i) => i).filter((i) => !referenced.has(i));
  made.push(makeDirectory({ directories: roots.map((c, k) => node(`r${String(k).padStart(5, "0")}`, c)) }));
  return { directories: made, root: directoryDigest(made[made.length - 1]) };
}

/** Each stored row's digest and children column, hex (null: not filled in). */
async function childrenRows(schema: string): Promise<{ digest: string; children: string | null }[]> {
  const { rows } = await stores.admin.query(
    `SELECT encode(digest, 'hex') AS digest, encode(children, 'hex') AS children FROM "${schema}".directories ORDER BY digest`,
  );
  return rows;
}

/** What childrenRows should give for these directories (each child once, where first named); `unknown` ones null. */
function expectedChildren(
  directories: Directory[],
  unknown: Digest[] = [],
): { digest: string; children: string | null }[] {
  const rows = new Map<string, string | null>();
  for (const d of directories) {
    const children: string[] = [];
    for (const c of d.directories) {
      const child = Buffer.from(c.digest).toString("hex");
      if (!children.includes(child)) children.push(child);
    }
    rows.set(directoryDigest(d).hex, children.join(""));
  }
  for (const d of unknown) rows.set(d.hex, null);
  return [...rows]
    .map(([digest, children]) => ({ digest, children }))
    .sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
}

describe("childEdges", () => {
  it("lists each child directory once, at its first position, as decoding does", () => {
    const trees = [generateTree({ directories: 3000, seed: 31 }).directories, randomDag(300, 5).directories];
    for (const directories of trees) {
      for (const d of directories) {
        const bytes = encodeDirectory(d);
        const decoded = decodeDirectory(bytes).directories;
        const first = new Map<string, number>();
        decoded.forEach((c, i) => {
          const key = Buffer.from(c.digest).toString("hex");
          if (!first.has(key)) first.set(key, i);
        });
        expect(childEdges(bytes).map((e) => [Buffer.from(e.child).toString("hex"), e.idx])).toEqual([...first]);
      }
    }
  });
});

describe("getRecursive over the children column", () => {
  it("yields exactly core's breadth-first order, each directory once, for random DAGs with diamonds", async () => {
    const service = stores.open();
    for (const seed of [1, 2, 3, 4]) {
      const dag = randomDag(400, seed);
      await upload(service, dag.directories);
      const fresh = stores.track(PostgresDirectoryService.open(stores.url({ schema: service.store.schema })));
      const freshCount = countQueries(fresh);
      await fresh.store.init();
      freshCount.count = 0;
      const got = await collect(fresh.getRecursive(dag.root));
      const expected = await collect(breadthFirst((ds) => service.store.getMany(ds), dag.root));
      expect(hexes(got)).toEqual(hexes(expected));
      expect(new Set(hexes(got)).size).toBe(dag.directories.length);
      expect(freshCount.count).toBe(1);
    }
  });

  it("reads below a directory whose children are not filled in (stored by an older castore) level by level", async () => {
    const service = stores.open();
    const tree = generateTree({ directories: 2000, seed: 41 });
    await upload(service, tree.directories);
    const schema = service.store.schema;
    // A directory with children whose column is NULL, as if an older castore stored it after the fill.
    const cut = tree.directories.findIndex((d, i) => i > 1000 && d.directories.length > 1);
    await stores.admin.query(`UPDATE "${schema}".directories SET children = NULL WHERE digest = $1`, [
      Buffer.from(tree.digests[cut].bytes),
    ]);
    const got = await collect(service.getRecursive(tree.root));
    expect(new Set(hexes(got))).toEqual(new Set(tree.digests.map((d) => d.hex)));
    expect(got).toHaveLength(2000);
  });

  it("skips rows a children column names that its directory does not refer to", async () => {
    const service = stores.open();
    const tree = deepChain(50);
    const root = await upload(service, tree.directories);
    const stray = await upload(service, [fixtures.DIRECTORY_A, fixtures.DIRECTORY_B]);
    await stores.admin.query(
      `UPDATE "${service.store.schema}".directories SET children = children || $2 WHERE digest = $1`,
      [Buffer.from(root.bytes), Buffer.from(stray.bytes)],
    );
    const got = await collect(service.getRecursive(root));
    expect(hexes(got)).toEqual(tree.digests.map((d) => d.hex).reverse());
  });

  it("reports a directory named but not stored as missing", async () => {
    const service = stores.open();
    const tree = deepChain(20);
    const root = await upload(service, tree.directories);
    await stores.admin.query(`DELETE FROM "${service.store.schema}".directories WHERE digest = $1`, [
      Buffer.from(tree.digests[5].bytes),
    ]);
    const seen: Directory[] = [];
    const error = await (async () => {
      try {
        for await (const d of service.getRecursive(root)) seen.push(d);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(CorruptionError);
    expect((error as Error).message).toContain(`directory ${tree.digests[5]} below root ${root} is missing`);
    expect(seen).toHaveLength(20 - 1 - 5);
  });
});

describe("every upload writes each directory's children in its row", () => {
  it.each(["copy", "merge", "unnest", "stream", "auto"] as const)("%s", async (uploadMethod: UploadMethod) => {
    const service = stores.open({ uploadMethod });
    const tree = randomDag(3000, 9);
    await upload(service, tree.directories);
    // An overlapping upload: the shared rows are skipped.
    const more = randomDag(500, 10);
    await upload(service, more.directories);
    await upload(service, [fixtures.DIRECTORY_A, fixtures.DIRECTORY_B, fixtures.DIRECTORY_D]);
    expect(await childrenRows(service.store.schema)).toEqual(
      expectedChildren([
        ...tree.directories,
        ...more.directories,
        fixtures.DIRECTORY_A,
        fixtures.DIRECTORY_B,
        fixtures.DIRECTORY_D,
      ]),
    );
  });

  it("repair writes the children of the rows it restores", async () => {
    const service = stores.open();
    const root = await upload(service, [fixtures.DIRECTORY_A, fixtures.DIRECTORY_B, fixtures.DIRECTORY_D]);
    const schema = service.store.schema;
    await stores.admin.query(`UPDATE "${schema}".directories SET children = NULL`);
    await service.repair!([fixtures.DIRECTORY_D]);
    const a = directoryDigest(fixtures.DIRECTORY_A);
    const b = directoryDigest(fixtures.DIRECTORY_B);
    expect(await childrenRows(schema)).toEqual(expectedChildren([fixtures.DIRECTORY_D], [a, b]));
    expect(hexes(await collect(service.getRecursive(root)))).toEqual(
      hexes([fixtures.DIRECTORY_D, fixtures.DIRECTORY_A, fixtures.DIRECTORY_B]),
    );
  });
});

/**
 * A schema exactly as castore with layout version 2 left it (the DDL of
 * versions 1 and 2, version 2 recorded), holding `directories` as rows.
 */
async function layoutTwoSchema(
  directories: Directory[],
  damaged?: { digest: Digest; bytes: Uint8Array },
): Promise<string> {
  const schema = stores.freshSchema();
  const q = `"${schema}"`;
  await stores.admin.query(`CREATE SCHEMA ${q};
    CREATE TABLE ${q}.schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE ${q}.directories (digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32), bytes bytea NOT NULL);
    CREATE TABLE ${q}.chunks (digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32), data bytea NOT NULL);
    ALTER TABLE ${q}.chunks ALTER COLUMN data SET STORAGE EXTERNAL;
    CREATE TABLE ${q}.blobs (digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
      size bigint NOT NULL CHECK (size >= 0), chunk_count integer NOT NULL CHECK (chunk_count >= 0));
    CREATE TABLE ${q}.blob_chunks (blob bytea NOT NULL, idx integer NOT NULL CHECK (idx >= 0),
      chunk bytea NOT NULL CHECK (octet_length(chunk) = 32), size integer NOT NULL CHECK (size >= 0),
      PRIMARY KEY (blob, idx));
    INSERT INTO ${q}.schema_version (version) VALUES (2)`);
  const digests = directories.map((d) => Buffer.from(directoryDigest(d).bytes));
  const bytes = directories.map((d) => Buffer.from(encodeDirectory(d)));
  if (damaged) {
    const at = digests.findIndex((d) => d.equals(damaged.digest.bytes));
    bytes[at] = Buffer.from(damaged.bytes);
  }
  await stores.admin.query(`INSERT INTO ${q}.directories SELECT * FROM unnest($1::bytea[], $2::bytea[])`, [
    digests,
    bytes,
  ]);
  return schema;
}

describe("a database of layout version 2 (no children column) migrates when a store opens it", () => {
  it("fills the children in from the stored rows in batches, with progress in the log, and records version 4", async () => {
    const tree = generateTree({ directories: 3000, seed: 51 });
    const schema = await layoutTwoSchema(tree.directories);
    const log: string[] = [];
    const service = stores.track(
      PostgresDirectoryService.open(stores.url({ schema }), { log: (line) => log.push(line), childrenFillBatch: 1000 }),
    );
    const counted = countQueries(service);
    await service.store.init();
    expect(log[0]).toMatch(
      new RegExp(`^postgres schema "${schema}": filling in the child directories .*in batches of 1000`),
    );
    expect(log.at(-1)).toBe(`postgres schema "${schema}": children filled for all 3000 directories; layout version 4`);
    expect(await childrenRows(schema)).toEqual(expectedChildren(tree.directories));
    const versions = await stores.admin.query(`SELECT version FROM "${schema}".schema_version ORDER BY version`);
    expect(versions.rows).toEqual([{ version: 2 }, { version: 3 }, { version: 4 }, { version: SCHEMA_VERSION }]);
    // Four batches (the fourth finds the end), each one transaction.
    expect(counted.texts.filter((t) => t.startsWith(`SELECT after, directories`))).toHaveLength(4);

    // Old rows and new ones read as one closure, in one statement.
    counted.count = 0;
    expect(await collect(service.getRecursive(tree.root))).toHaveLength(3000);
    expect(counted.count).toBe(1);
    const root = await upload(service, [fixtures.DIRECTORY_A, fixtures.DIRECTORY_B, fixtures.DIRECTORY_D]);
    expect(await collect(service.getRecursive(root))).toHaveLength(3);
  });

  it("a fill cut short goes on from its last committed batch when the store is opened again", async () => {
    const tree = generateTree({ directories: 2500, seed: 52 });
    const schema = await layoutTwoSchema(tree.directories);
    // The process "dies" after its first batch committed: its first progress line throws.
    const dying = stores.track(
      PostgresDirectoryService.open(stores.url({ schema }), {
        childrenFillBatch: 1000,
        log: () => {
          throw new Error("killed");
        },
      }),
    );
    await expect(dying.store.init()).rejects.toThrow("killed");
    const progress = await stores.admin.query(`SELECT directories FROM "${schema}".children_fill`);
    expect(progress.rows).toEqual([{ directories: "1000" }]);

    const log: string[] = [];
    const service = stores.track(
      PostgresDirectoryService.open(stores.url({ schema }), { log: (line) => log.push(line), childrenFillBatch: 1000 }),
    );
    await service.store.init();
    expect(log.at(-1)).toBe(`postgres schema "${schema}": children filled for all 2500 directories; layout version 4`);
    expect(await childrenRows(schema)).toEqual(expectedChildren(tree.directories));
    expect(await collect(service.getRecursive(tree.root))).toHaveLength(2500);
  });

  it("processes opening it at once take turns; each batch is done once", async () => {
    const tree = generateTree({ directories: 4000, seed: 53 });
    const schema = await layoutTwoSchema(tree.directories);
    const services = Array.from({ length: 4 }, () =>
      stores.track(PostgresDirectoryService.open(stores.url({ schema }), { log: () => {}, childrenFillBatch: 500 })),
    );
    await Promise.all(services.map((s) => s.store.init()));
    const progress = await stores.admin.query(`SELECT directories FROM "${schema}".children_fill`);
    expect(progress.rows).toEqual([{ directories: "4000" }]);
    expect(await childrenRows(schema)).toEqual(expectedChildren(tree.directories));
  });

  it("a damaged row gets no children and is named in the log; a repair restores it and its children", async () => {
    const directories = [fixtures.DIRECTORY_A, fixtures.DIRECTORY_B, fixtures.DIRECTORY_D];
    const d = directoryDigest(fixtures.DIRECTORY_D);
    const schema = await layoutTwoSchema(directories, { digest: d, bytes: encodeDirectory(fixtures.DIRECTORY_A) });
    const log: string[] = [];
    const service = stores.track(PostgresDirectoryService.open(stores.url({ schema }), { log: (l) => log.push(l) }));
    await service.store.init();
    expect(log.at(-1)).toContain(`1 stored rows are corrupt and have none (${d.hex})`);
    expect(await childrenRows(schema)).toEqual(expectedChildren(directories, [d]));
    await expect(collect(service.getRecursive(d))).rejects.toBeInstanceOf(CorruptionError);
    await service.repair!([fixtures.DIRECTORY_D]);
    expect(hexes(await collect(service.getRecursive(d)))).toEqual(
      hexes([fixtures.DIRECTORY_D, fixtures.DIRECTORY_A, fixtures.DIRECTORY_B]),
    );
    expect(await childrenRows(schema)).toEqual(expectedChildren(directories));
  });

  it("an empty one is complete at once and logs nothing", async () => {
    const schema = await layoutTwoSchema([]);
    const log: string[] = [];
    const service = stores.track(PostgresDirectoryService.open(stores.url({ schema }), { log: (l) => log.push(l) }));
    await service.store.init();
    expect(log).toEqual([]);
    const versions = await stores.admin.query(`SELECT version FROM "${schema}".schema_version ORDER BY version`);
    expect(versions.rows).toEqual([{ version: 2 }, { version: 3 }, { version: 4 }, { version: 5 }]);
  });
});
