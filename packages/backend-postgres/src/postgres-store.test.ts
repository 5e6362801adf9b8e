import { deepChain, generateTree, type GeneratedTree } from "@castore-ts/conformance";
import {
  BackendError,
  CorruptionError,
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
import { getFreePort } from "@castore-ts/testing";
import { createServer, type AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { PostgresDirectoryService, SCHEMA_VERSION } from "./index.js";
import { countQueries, postgresTestStoresForFile } from "./test-postgres.js";

const { DIRECTORY_A, DIRECTORY_B, DIRECTORY_D } = fixtures;

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

/** A root with `n` distinct empty-but-for-one-file children: depth 1, `n` directories on level 2. Children first. */
function wideTree(n: number, tag = ""): Directory[] {
  const children = Array.from({ length: n }, (_, i) =>
    makeDirectory({ files: [makeFileNode(`f${tag}${i}`, new Uint8Array(32).fill(7), i)] }),
  );
  const nodes = children.map((c, i) =>
    makeDirectoryNode(`d${String(i).padStart(6, "0")}`, directoryDigest(c), directorySize(c)),
  );
  return [...children, makeDirectory({ directories: nodes })];
}

async function rowCount(schema: string): Promise<number> {
  const { rows } = await stores.admin.query(`SELECT count(*)::int AS n FROM "${schema}".directories`);
  return rows[0].n;
}

/** Resolves to the error a promise rejects with (fails the test if it resolves). */
async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

describe("schema", () => {
  it("is created on first use: bytea digest primary key, canonical bytes, children, a recorded version", async () => {
    const service = stores.open();
    const schema = service.store.schema;
    const root = await upload(service, [DIRECTORY_A, DIRECTORY_B]);

    const columns = await stores.admin.query(
      `SELECT table_name, column_name, data_type FROM information_schema.columns
       WHERE table_schema = $1 AND table_name IN ('directories', 'schema_version')
       ORDER BY table_name, ordinal_position`,
      [schema],
    );
    expect(columns.rows).toEqual([
      { table_name: "directories", column_name: "digest", data_type: "bytea" },
      { table_name: "directories", column_name: "bytes", data_type: "bytea" },
      { table_name: "directories", column_name: "children", data_type: "bytea" },
      { table_name: "directories", column_name: "used_at", data_type: "timestamp with time zone" },
      { table_name: "schema_version", column_name: "version", data_type: "integer" },
      { table_name: "schema_version", column_name: "applied_at", data_type: "timestamp with time zone" },
    ]);
    const pk = await stores.admin.query(
      `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
       WHERE i.indrelid = $1::regclass AND i.indisprimary`,
      [`"${schema}".directories`],
    );
    expect(pk.rows).toEqual([{ attname: "digest" }]);
    const versions = await stores.admin.query(`SELECT version FROM "${schema}".schema_version`);
    expect(versions.rows).toEqual([{ version: SCHEMA_VERSION }]);

    const stored = await stores.admin.query(`SELECT digest, bytes FROM "${schema}".directories WHERE digest = $1`, [
      Buffer.from(root.bytes),
    ]);
    expect(stored.rows[0].digest).toEqual(Buffer.from(root.bytes));
    expect(stored.rows[0].bytes).toEqual(Buffer.from(encodeDirectory(DIRECTORY_B)));
    expect(await rowCount(schema)).toBe(2);
  });

  it("is created once when many processes' stores start at once on the same schema", async () => {
    const schema = stores.freshSchema();
    const services = Array.from({ length: 12 }, () =>
      stores.track(PostgresDirectoryService.open(stores.url({ schema }))),
    );
    await Promise.all(services.map((s) => s.store.init()));
    const versions = await stores.admin.query(`SELECT version FROM "${schema}".schema_version`);
    expect(versions.rows).toEqual([{ version: SCHEMA_VERSION }]);
    // Later stores find it in place with one query and no DDL.
    const later = stores.track(PostgresDirectoryService.open(stores.url({ schema })));
    const queries = countQueries(later);
    await later.store.init();
    expect(queries.count).toBe(1);
  });

  it("keeps schemas apart", async () => {
    const one = stores.open();
    const two = stores.open();
    const root = await upload(one, [DIRECTORY_A, DIRECTORY_B]);
    expect(await one.get(root)).toEqual(DIRECTORY_B);
    expect(await two.get(root)).toBeUndefined();
  });

  it("refuses a schema written by a newer castore", async () => {
    const service = stores.open();
    await service.store.init();
    await stores.admin.query(`INSERT INTO "${service.store.schema}".schema_version (version) VALUES ($1)`, [
      SCHEMA_VERSION + 1,
    ]);
    const reopened = stores.track(PostgresDirectoryService.open(stores.url({ schema: service.store.schema })));
    const error = await failure(reopened.get(Digest.of(new Uint8Array())));
    expect(error).toBeInstanceOf(BackendError);
    expect(error.message).toContain(
      `layout version ${SCHEMA_VERSION + 1}, newer than this castore understands (${SCHEMA_VERSION})`,
    );
  });
});

describe("URL options", () => {
  it("pass pg's own (sslmode, application_name, options) through to the connection", async () => {
    const service = stores.open(
      {},
      { sslmode: "disable", application_name: "castore-url-test", options: "-c statement_timeout=4321" },
    );
    await service.store.init();
    const client = await service.store.pool.connect();
    try {
      const { rows } = await client.query(
        "SELECT current_setting('application_name') AS app, current_setting('statement_timeout') AS timeout",
      );
      expect(rows[0]).toEqual({ app: "castore-url-test", timeout: "4321ms" });
    } finally {
      client.release();
    }
  });
});

describe("round trips", () => {
  // Each getRecursive is one statement (a recursive query streamed as COPY); at most 2 round trips
  // for any tree, so a walk that queried once per level (d + 1 queries) fails these.
  it("getRecursive of a 1 000-deep chain is one statement, root to leaf", async () => {
    const service = stores.open();
    const tree = deepChain(1000);
    const root = await upload(service, tree.directories);
    const reader = stores.track(PostgresDirectoryService.open(stores.url({ schema: service.store.schema })));
    const counted = countQueries(reader);
    await reader.store.init();
    counted.count = 0;
    counted.texts = [];
    const got = await collect(reader.getRecursive(root));
    expect(got.map(directoryDigest).map((d) => d.hex)).toEqual(tree.digests.map((d) => d.hex).reverse());
    expect(counted.count).toBeLessThanOrEqual(2);
    expect(counted.texts).toEqual([expect.stringMatching(/^COPY \(\s*WITH RECURSIVE/)]);
  });

  it("getRecursive of a root with 20 000 child directories is one statement", async () => {
    const service = stores.open();
    const directories = wideTree(20_000);
    const root = await upload(service, directories);
    const reader = stores.track(PostgresDirectoryService.open(stores.url({ schema: service.store.schema })));
    const readerCount = countQueries(reader);
    await reader.store.init();
    readerCount.count = 0;
    const got = await collect(reader.getRecursive(root));
    expect(got).toHaveLength(20_001);
    expect(readerCount.count).toBeLessThanOrEqual(2);
    expect(readerCount.count).toBe(1);
  });

  it("getRecursive of an absent root is one statement and yields nothing", async () => {
    const service = stores.open();
    await upload(service, [DIRECTORY_A, DIRECTORY_B]);
    const reader = stores.track(PostgresDirectoryService.open(stores.url({ schema: service.store.schema })));
    const counted = countQueries(reader);
    await reader.store.init();
    counted.count = 0;
    expect(await collect(reader.getRecursive(directoryDigest(DIRECTORY_D)))).toEqual([]);
    expect(counted.count).toBe(1);
  });

  it("getMany is one query however many digests it asks for", async () => {
    const service = stores.open();
    const tree = generateTree({ directories: 5000, seed: 3 });
    await upload(service, tree.directories);
    const reader = stores.track(PostgresDirectoryService.open(stores.url({ schema: service.store.schema })));
    const counted = countQueries(reader);
    await reader.store.init();
    counted.count = 0;
    const absent = Digest.of(new TextEncoder().encode("absent"));
    const asked = [absent, ...tree.digests.slice().reverse(), absent];
    const got = await reader.store.getMany(asked);
    expect(counted.count).toBe(1);
    expect(got).toHaveLength(asked.length);
    expect(got[0]).toBeUndefined();
    expect(got.at(-1)).toBeUndefined();
    for (let i = 1; i < asked.length - 1; i++) expect(Digest.of(got[i]!).equals(asked[i])).toBe(true);
  });

  it("a small upload is one statement; a large one stored at close one transaction (which are stored, COPY of the rest, touch)", async () => {
    const service = stores.open();
    const counted = countQueries(service);
    await service.store.init();
    counted.texts = [];
    await service.put(DIRECTORY_A);
    expect(counted.texts).toEqual([expect.stringMatching(/^INSERT INTO .* unnest/s)]);

    // By default a large upload streams (streaming-upload.test.ts); putClosure is the close-time path.
    const big = generateTree({ directories: 5000, seed: 4 });
    expect(big.encodedBytes).toBeGreaterThan(256 * 1024);
    const entries = big.directories.map((directory) => {
      const bytes = encodeDirectory(directory);
      return { digest: Digest.of(bytes), bytes, directory };
    });
    counted.texts = [];
    await service.store.putClosure(entries);
    expect(counted.texts.map((t) => t.split(/\s+/)[0])).toEqual(["BEGIN", "SELECT", "COPY", "COMMIT"]);
    // All stored already: the question, then the touch of every entry (spec §10.2).
    counted.texts = [];
    await upload(service, big.directories);
    expect(counted.texts.map((t) => t.split(/\s+/)[0])).toEqual([
      "BEGIN;",
      "SELECT",
      "ROLLBACK",
      "BEGIN",
      "SELECT",
      "WITH",
      "COMMIT",
    ]);
    expect(await rowCount(service.store.schema)).toBe(1 + big.directories.length);
  });

  it("the merge method is one transaction; its temporary table stays with the connection", async () => {
    const service = stores.open({ uploadMethod: "merge" });
    const counted = countQueries(service);
    await service.store.init();
    counted.texts = [];
    await upload(service, generateTree({ directories: 5000, seed: 4 }).directories);
    expect(counted.texts.map((t) => t.split(/\s+/)[0])).toEqual(["BEGIN", "CREATE", "COPY", "INSERT", "COMMIT"]);
    counted.texts = [];
    await upload(service, generateTree({ directories: 5000, seed: 5 }).directories);
    expect(counted.texts.map((t) => t.split(/\s+/)[0])).toEqual(["BEGIN", "COPY", "INSERT", "COMMIT"]);
    expect(await rowCount(service.store.schema)).toBe(10_000);
  });

  it("a COPY that races another upload of the same directories falls back to merging", async () => {
    const service = stores.open({ uploadMethod: "copy" });
    const counted = countQueries(service);
    await service.store.init();
    counted.texts = [];
    const schema = service.store.schema;
    const tree = generateTree({ directories: 3000, seed: 13 });
    // Another writer has inserted one of the tree's rows but not committed: the existence
    // check cannot see it, the COPY waits for it, then fails on the primary key.
    const other = await stores.admin.connect();
    try {
      await other.query("BEGIN");
      await other.query(`INSERT INTO "${schema}".directories (digest, bytes) VALUES ($1, $2)`, [
        Buffer.from(tree.digests[1234].bytes),
        Buffer.from(encodeDirectory(tree.directories[1234])),
      ]);
      const uploading = upload(service, tree.directories);
      for (let i = 0; i < 400; i++) {
        const { rows } = await stores.admin.query(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = 'castore' AND wait_event_type = 'Lock' AND query LIKE 'COPY "${schema}"%'`,
        );
        if (rows.length > 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await other.query("COMMIT");
      expect((await uploading).equals(tree.root)).toBe(true);
      expect(counted.texts.map((t) => t.split(/\s+/)[0])).toEqual([
        "BEGIN",
        "SELECT",
        "COPY",
        "ROLLBACK",
        "BEGIN",
        "CREATE",
        "COPY",
        "INSERT",
        "COMMIT",
      ]);
    } finally {
      other.release();
    }
    expect(await rowCount(schema)).toBe(3000);
    expect((await collect(service.getRecursive(tree.root))).length).toBe(3000);
  });

  it.each(["copy", "merge", "unnest", "stream", "auto"] as const)(
    "large uploads through %s store every directory once",
    async (uploadMethod) => {
      const service = stores.open({ uploadMethod });
      const tree = generateTree({ directories: 20_000, seed: 6 });
      const root = await upload(service, tree.directories);
      expect(root.equals(tree.root)).toBe(true);
      expect(await rowCount(service.store.schema)).toBe(20_000);
      // Again (all present already), and a tree that shares most of it.
      await upload(service, tree.directories);
      expect(await rowCount(service.store.schema)).toBe(20_000);
      expect((await collect(service.getRecursive(root))).length).toBe(20_000);
    },
  );
});

describe("listDigests", () => {
  it("lists every digest once, in bytewise order, a page at a time", async () => {
    const service = stores.open();
    const tree = generateTree({ directories: 10_000, seed: 8 });
    await upload(service, tree.directories);
    const lister = stores.track(PostgresDirectoryService.open(stores.url({ schema: service.store.schema })));
    const counted = countQueries(lister);
    await lister.store.init();
    counted.count = 0;
    const listed = await collect(lister.listDigests!());
    expect(listed.map((d) => d.hex)).toEqual(tree.digests.map((d) => d.hex).sort());
    expect(counted.count).toBe(3); // pages of 4096 (the connection was counted from its start)
  });

  it("lists nothing for an empty store", async () => {
    expect(await collect(stores.open().listDigests!())).toEqual([]);
  });
});

describe("corruption injected by SQL", () => {
  it("bytes that do not hash to their key raise CorruptionError from get and getRecursive", async () => {
    const service = stores.open();
    const root = await upload(service, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D]);
    const b = directoryDigest(DIRECTORY_B);
    await stores.admin.query(`UPDATE "${service.store.schema}".directories SET bytes = $2 WHERE digest = $1`, [
      Buffer.from(b.bytes),
      Buffer.from(encodeDirectory(DIRECTORY_A)), // valid directory bytes, wrong digest
    ]);
    await expect(service.get(b)).rejects.toBeInstanceOf(CorruptionError);
    await expect(service.get(b)).rejects.toThrow(b.hex);
    await expect(collect(service.getRecursive(root))).rejects.toBeInstanceOf(CorruptionError);
  });

  it("bytes that are not a directory, and a missing child, raise CorruptionError", async () => {
    const service = stores.open();
    const root = await upload(service, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D]);
    const schema = service.store.schema;
    await stores.admin.query(`UPDATE "${schema}".directories SET bytes = '\\xffffff'::bytea WHERE digest = $1`, [
      Buffer.from(root.bytes),
    ]);
    await expect(service.get(root)).rejects.toBeInstanceOf(CorruptionError);
    await expect(collect(service.getRecursive(root))).rejects.toBeInstanceOf(CorruptionError);

    const other = stores.open();
    const root2 = await upload(other, [DIRECTORY_A, DIRECTORY_B, DIRECTORY_D]);
    await stores.admin.query(`DELETE FROM "${other.store.schema}".directories WHERE digest = $1`, [
      Buffer.from(directoryDigest(DIRECTORY_A).bytes),
    ]);
    await expect(collect(other.getRecursive(root2))).rejects.toBeInstanceOf(CorruptionError);
  });
});

describe("a connection killed mid-upload", () => {
  it.each(["copy", "merge", "unnest"] as const)(
    "(%s) leaves nothing visible, is dropped from the pool, and the next call works",
    async (uploadMethod) => {
      const service = stores.open({ uploadMethod });
      const schema = service.store.schema;
      await service.store.init();
      const tree = generateTree({ directories: 20_000, seed: 9 });

      // Hold a lock the upload's writing statement needs (COPY into the table, or INSERT),
      // so its transaction is open and waiting when we kill it: the kill lands mid-upload
      // every time (for "merge", after the rows were copied into the temporary table).
      const blocker = await stores.admin.connect();
      let pid: number | undefined;
      try {
        await blocker.query("BEGIN");
        await blocker.query(`LOCK TABLE "${schema}".directories IN SHARE ROW EXCLUSIVE MODE`);
        const uploading = upload(service, tree.directories);
        uploading.catch(() => undefined);
        for (let i = 0; i < 400 && pid === undefined; i++) {
          const { rows } = await stores.admin.query(
            `SELECT pid FROM pg_stat_activity
             WHERE application_name = 'castore' AND datname = current_database()
               AND wait_event_type = 'Lock' AND xact_start IS NOT NULL
               AND (query LIKE 'INSERT INTO "${schema}"%' OR query LIKE 'COPY "${schema}"%'
                    OR query LIKE 'WITH locked AS%')`,
          );
          pid = rows[0]?.pid;
          if (pid === undefined) await new Promise((r) => setTimeout(r, 25));
        }
        expect(pid, "the upload's backend waiting on the lock").toBeDefined();
        await stores.admin.query("SELECT pg_terminate_backend($1)", [pid]);
        const error = await failure(uploading);
        expect(error).toBeInstanceOf(BackendError);
        expect((error as BackendError).unavailable).toBe(true);
        expect(error.message).toContain(`127.0.0.1:${stores.server.port}`);
        // The store used one connection so far (init, then the upload): it was destroyed.
        expect(service.store.pool.totalCount).toBe(0);
      } finally {
        await blocker.query("ROLLBACK").catch(() => undefined);
        blocker.release();
      }

      expect(await rowCount(schema)).toBe(0);
      expect(await service.get(tree.root)).toBeUndefined();
      const { rows } = await stores.admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1", [
        pid,
      ]);
      expect(rows[0].n).toBe(0);
      // The next upload and read work, on a healthy connection.
      const root = await upload(service, tree.directories);
      expect((await collect(service.getRecursive(root))).length).toBe(20_000);
    },
  );
});

describe("concurrency", () => {
  // A long run on a loaded two-core machine (about 30 s): every upload also marks the 3000 shared
  // directories as used (spec §10.2), one transaction after another.
  it("32 concurrent overlapping uploads, large and small, all succeed", { timeout: 120_000 }, async () => {
    const service = stores.open({ poolMax: 16 });
    const shared = generateTree({ directories: 3000, seed: 10 });
    const sharedNode = makeDirectoryNode("shared", shared.root, shared.rootSize);
    const uploads: { directories: Directory[]; count: number }[] = [];
    for (let i = 0; i < 32; i++) {
      // Every upload carries the shared tree; half also a large tree of their own, some of
      // which overlap each other (i % 4), so many transactions contend for the same keys.
      const own: GeneratedTree = generateTree({
        directories: i % 2 === 0 ? 2000 : 3,
        seed: 100 + (i % 4) + (i % 2) * 10,
      });
      const root = makeDirectory({
        directories: [makeDirectoryNode("own", own.root, own.rootSize), sharedNode],
        files: [makeFileNode(`tag${i}`, new Uint8Array(32), i)],
      });
      const directories = [...shared.directories, ...own.directories, root];
      uploads.push({ directories, count: new Set([...shared.digests, ...own.digests].map((d) => d.hex)).size + 1 });
    }
    const roots = await Promise.all(uploads.map((u) => upload(service, u.directories)));
    for (let i = 0; i < roots.length; i++) {
      expect((await collect(service.getRecursive(roots[i]))).length).toBe(uploads[i].count);
    }
  });
});

describe("connection errors", () => {
  const password = "pw-Zq81-secret";

  function expectNamed(error: Error, port: number, database: string): void {
    expect(error).toBeInstanceOf(BackendError);
    expect((error as BackendError).unavailable).toBe(true);
    expect(error.message).toContain(`127.0.0.1:${port}`);
    expect(error.message).toContain(`database "${database}"`);
    expect(error.message).not.toContain(password);
    expect(String(error)).not.toContain(password);
    expect(String((error as BackendError).cause)).not.toContain(password);
  }

  it("an unreachable server", async () => {
    const port = await getFreePort();
    const service = stores.track(
      PostgresDirectoryService.open(`postgres://castore:${password}@127.0.0.1:${port}/castore_db`),
    );
    const error = await failure(service.get(Digest.of(new Uint8Array())));
    expectNamed(error, port, "castore_db");
    expect(error.message).toMatch(/ECONNREFUSED/);
    // the same from every entry point
    expectNamed(await failure(service.put(DIRECTORY_A)), port, "castore_db");
    expectNamed(await failure(collect(service.getRecursive(Digest.of(new Uint8Array())))), port, "castore_db");
    expectNamed(await failure(collect(service.listDigests!())), port, "castore_db");
  });

  it("a database that does not exist", async () => {
    const url = new URL(stores.server.url);
    url.pathname = "/no_such_database";
    url.password = password;
    const service = stores.track(PostgresDirectoryService.open(url.href));
    const error = await failure(service.get(Digest.of(new Uint8Array())));
    expectNamed(error, stores.server.port, "no_such_database");
    expect(error.message).toMatch(/database "no_such_database" does not exist/);
  });

  it("a wrong password", async (context) => {
    if (stores.server.kind === "env") {
      context.skip("needs its own server: the test rewrites pg_hba.conf to require a password for one role");
    }
    // The test server trusts every local connection. Make it ask one role for a password:
    // a superuser can write pg_hba.conf through COPY … TO (the server's own file system,
    // also inside a container) and reload.
    await stores.admin.query("DROP ROLE IF EXISTS castore_pw");
    await stores.admin.query(`CREATE ROLE castore_pw LOGIN PASSWORD '${password}'`);
    const { rows } = await stores.admin.query("SHOW hba_file");
    const hba = [
      "local all all trust",
      "host all castore_pw 127.0.0.1/32 scram-sha-256",
      "host all all 127.0.0.1/32 trust",
      "host all all ::1/128 trust",
    ];
    const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
    await stores.admin.query(
      `COPY (SELECT unnest(ARRAY[${hba.map(literal).join(", ")}])) TO ${literal(rows[0].hba_file)}`,
    );
    await stores.admin.query("SELECT pg_reload_conf()");
    const { rows: rules } = await stores.admin.query(
      "SELECT auth_method FROM pg_hba_file_rules WHERE user_name = '{castore_pw}'",
    );
    expect(rules).toEqual([{ auth_method: "scram-sha-256" }]);

    const url = new URL(stores.server.url);
    url.username = "castore_pw";
    url.password = `${password}-wrong`;
    const wrong = stores.track(PostgresDirectoryService.open(url.href));
    const error = await failure(wrong.get(Digest.of(new Uint8Array())));
    expectNamed(error, stores.server.port, stores.server.database);
    expect(error.message).not.toContain(`${password}-wrong`);
    expect(error.message).toMatch(/password authentication failed for user "castore_pw"/);

    // The right password works (so it was the password that failed).
    url.password = password;
    await stores.admin.query(`GRANT CREATE ON DATABASE "${stores.server.database}" TO castore_pw`);
    const right = stores.track(PostgresDirectoryService.open(url.href + `?schema=${stores.freshSchema()}`));
    const root = await right.put(DIRECTORY_A);
    expect(await right.get(root)).toEqual(DIRECTORY_A);
  });
});

describe("timeouts and a busy pool", () => {
  it("a server that accepts but never answers: BackendError after connect_timeout", async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      const service = stores.track(
        PostgresDirectoryService.open(`postgres://u@127.0.0.1:${port}/db?connect_timeout=1`),
      );
      // the server never answers: only connect_timeout ends the call (else the test times out)
      const error = await failure(service.get(Digest.of(new Uint8Array())));
      expect(error).toBeInstanceOf(BackendError);
      expect((error as BackendError).unavailable).toBe(true);
      expect(error.message).toContain(`127.0.0.1:${port}, database "db"`);
      expect(error.message).toMatch(/timeout/);
    } finally {
      silent.close();
    }
  });

  it("waiting for a free pooled connection is not a timeout", async () => {
    const service = stores.open({ poolMax: 1, connectTimeoutMs: 200 });
    const tree = generateTree({ directories: 1000, seed: 14 });
    const root = await upload(service, tree.directories);
    // Walks at once through the one connection, twice as many each round, until a round takes longer in all
    // than the connect timeout: its last walks waited longer than that for the connection, and none failed.
    // (A fixed number of walks stopped being enough once a walk got fast.)
    for (let walks = 20; ; walks *= 2) {
      const started = Date.now();
      const results = await Promise.all(Array.from({ length: walks }, () => collect(service.getRecursive(root))));
      expect(results.every((w) => w.length === 1000)).toBe(true);
      if (Date.now() - started > 2 * 200) break;
    }
  });
});

describe("abort", () => {
  it("an upload aborted in the middle of its COPY stores nothing, and the connection stays usable", async () => {
    for (const uploadMethod of ["copy", "merge"] as const) {
      const service = stores.open({ uploadMethod, poolMax: 1 });
      await service.store.init();
      const tree = generateTree({ directories: 20_000, seed: 15 });
      const entries = tree.directories.map((directory) => {
        const bytes = encodeDirectory(directory);
        return { digest: Digest.of(bytes), bytes, directory };
      });
      // A signal that fires after the first few chunks of COPY data were sent.
      let checks = 0;
      const signal = {
        get aborted() {
          return ++checks > 4;
        },
        reason: new Error("stop"),
      } as AbortSignal;
      await expect(service.store.putClosure(entries, signal)).rejects.toThrow(/aborted/);
      expect(await rowCount(service.store.schema)).toBe(0);
      await service.store.putClosure(entries);
      expect(await rowCount(service.store.schema)).toBe(20_000);
    }
  });
});

describe("server restart", () => {
  it("is survived by the pool: idle connections die quietly and the next call works", async (context) => {
    if (!stores.server.canRestart) context.skip("the server from $CASTORE_TEST_POSTGRES_URL cannot be restarted");
    const service = stores.open({ poolMax: 8 });
    const tree = generateTree({ directories: 2000, seed: 11 });
    const root = await upload(service, tree.directories);
    // Several idle pooled connections, all of which the restart will cut.
    await Promise.all(Array.from({ length: 8 }, () => service.get(root)));
    expect(service.store.pool.idleCount).toBeGreaterThan(1);

    await stores.server.restart();

    expect(await service.get(root)).toBeDefined();
    expect((await collect(service.getRecursive(root))).length).toBe(2000);
    const second = await upload(service, generateTree({ directories: 500, seed: 12 }).directories);
    expect(await service.get(second)).toBeDefined();
  });

  it("in the middle of a getRecursive: the walk goes on level by level from where the stream broke", async (context) => {
    if (!stores.server.canRestart) context.skip("the server from $CASTORE_TEST_POSTGRES_URL cannot be restarted");
    const service = stores.open();
    // About 5 MiB of rows: far more than socket buffers hold, so the COPY is mid-stream at the restart.
    const tree = generateTree({ directories: 20_000, seed: 14 });
    const root = await upload(service, tree.directories);
    const counted = countQueries(service);
    const seen = new Set<string>();
    for await (const d of service.getRecursive(root)) {
      seen.add(directoryDigest(d).hex);
      if (seen.size === 30) await stores.server.restart();
    }
    expect(seen).toEqual(new Set(tree.digests.map((d) => d.hex)));
    // The rest came through getMany, a level at a time, on fresh connections.
    expect(counted.texts.some((t) => t.startsWith("SELECT digest, bytes"))).toBe(true);
  });

  it("reports the server as unavailable while it is down, and works once it is back", async (context) => {
    if (!stores.server.canRestart) context.skip("the server from $CASTORE_TEST_POSTGRES_URL cannot be restarted");
    const service = stores.open();
    const root = await upload(service, [DIRECTORY_A, DIRECTORY_B]);
    const restarting = stores.server.restart({ downtimeMs: 2000 });
    let downError: Error | undefined;
    for (let i = 0; i < 100 && !downError; i++) {
      try {
        await service.get(root);
        await new Promise((r) => setTimeout(r, 50));
      } catch (e) {
        downError = e as Error;
      }
    }
    await restarting;
    expect(downError).toBeInstanceOf(BackendError);
    expect((downError as BackendError).unavailable).toBe(true);
    expect(downError!.message).toContain(`127.0.0.1:${stores.server.port}`);
    expect(await service.get(root)).toEqual(DIRECTORY_B);
  });
});

describe("close", () => {
  it("releases the pool; later calls fail with BackendError", async () => {
    const service = stores.open();
    await service.put(DIRECTORY_A);
    await service.close();
    await service.close();
    expect(service.store.pool.totalCount).toBe(0);
    await expect(service.get(Digest.of(new Uint8Array()))).rejects.toThrow(/store is closed/);
  });
});

describe("README", () => {
  it("usage: open by URL through core's registry, put, walk, close", async () => {
    const { openDirectoryService } = await import("@castore-ts/core");
    const service = await openDirectoryService(stores.url({ schema: stores.freshSchema() }));
    stores.track(service as PostgresDirectoryService);
    const root = await upload(service, [DIRECTORY_A, DIRECTORY_B]);
    expect((await collect(service.getRecursive(root))).length).toBe(2);
    const direct = stores.track(
      PostgresDirectoryService.open(stores.url({ schema: stores.freshSchema() }), {
        poolMax: 20,
        sizeCheck: "snix-compat",
      }),
    );
    await direct.store.init();
    expect(await direct.get(root)).toBeUndefined();
    await service.close();
  });
});
