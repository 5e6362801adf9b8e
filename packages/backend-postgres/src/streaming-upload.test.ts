/**
 * Streaming uploads (openUpload): a large upload's rows go into one COPY while
 * the putter is still open, invisible until close; every way it can go wrong
 * (stored rows, overlapping uploads, a bad directory, abort, a dead
 * connection, a stalled client, closing the store) leaves nothing visible
 * that should not be, and gives every connection back.
 */
import { generateTree, type GeneratedTree } from "@castore-ts/conformance";
import {
  AbortError,
  BackendError,
  ClosureError,
  Digest,
  encodeDirectory,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  type Directory,
  type DirectoryPutter,
} from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import type { PostgresDirectoryService } from "./index.js";
import { countQueries, postgresTestStoresForFile } from "./test-postgres.js";

const stores = postgresTestStoresForFile();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function putAll(putter: DirectoryPutter, directories: Directory[]): Promise<void> {
  for (const d of directories) await putter.put(d);
}

async function upload(service: PostgresDirectoryService, directories: Directory[]): Promise<Digest> {
  const putter = service.putMultipleStart();
  await putAll(putter, directories);
  return putter.close();
}

async function rowCount(schema: string): Promise<number> {
  const { rows } = await stores.admin.query(`SELECT count(*)::int AS n FROM "${schema}".directories`);
  return rows[0].n;
}

async function closureSize(service: PostgresDirectoryService, root: Digest): Promise<number> {
  let n = 0;
  for await (const _ of service.getRecursive(root)) n++;
  return n;
}

/** Waits until `probe` returns a value (not undefined), polling; fails after 10 s. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The backend of the store's COPY into its table, while one is in progress, with the rows the server has taken so far. */
async function copyInProgress(schema: string): Promise<{ pid: number; tuples: number } | undefined> {
  const { rows } = await stores.admin.query(
    `SELECT a.pid, p.tuples_processed::int AS tuples
     FROM pg_stat_activity a JOIN pg_stat_progress_copy p USING (pid)
     WHERE a.application_name = 'castore' AND a.query LIKE $1`,
    [`COPY "${schema}".directories%`],
  );
  return rows[0];
}

/** Every connection of the store is back in its pool, and no streaming upload holds one. */
function expectConnectionsBack(service: PostgresDirectoryService): void {
  expect(service.store.openStreams).toBe(0);
  expect(service.store.pool.idleCount).toBe(service.store.pool.totalCount);
  expect(service.store.pool.waitingCount).toBe(0);
}

/** No backend of the store is inside a transaction (nothing left open on the server). */
async function expectNoOpenTransactions(): Promise<void> {
  const { rows } = await stores.admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'castore' AND xact_start IS NOT NULL`,
  );
  expect(rows[0].n).toBe(0);
}

/** A directory referring to a child nobody uploaded: ClosureError at put(). */
function danglingDirectory(): Directory {
  return makeDirectory({ directories: [makeDirectoryNode("missing", Digest.of(new Uint8Array([1, 2, 3])), 1)] });
}

/** One upload of `trees` side by side under one root tagged `tag`, each tree's directories in the given order. */
function combined(tag: string, trees: GeneratedTree[]): { directories: Directory[]; root: Digest } {
  const root = makeDirectory({
    directories: trees.map((t, i) => makeDirectoryNode(`t${i}-${t.root.hex.slice(0, 8)}`, t.root, t.rootSize)),
    files: [makeFileNode(`tag-${tag}`, new Uint8Array(32), 1)],
  });
  return { directories: [...trees.flatMap((t) => t.directories), root], root: Digest.of(encodeDirectory(root)) };
}

describe("a large upload streams", () => {
  it("its rows reach the server while the putter is open, invisible to others until close, all visible after", async () => {
    const service = stores.open();
    const schema = service.store.schema;
    const counted = countQueries(service);
    await service.store.init();
    counted.texts = [];
    const tree = generateTree({ directories: 20_000, seed: 21 });
    const putter = service.putMultipleStart();
    await putAll(putter, tree.directories.slice(0, 12_000));

    // Several batches of 2048 are at the server already, inside an open COPY.
    const copy = await eventually("the COPY to take 8192 rows", async () => {
      const c = await copyInProgress(schema);
      return c && c.tuples >= 8192 ? c : undefined;
    });
    expect(copy.tuples).toBeLessThanOrEqual(12_000);
    expect(service.store.openStreams).toBe(1);
    expect(await rowCount(schema)).toBe(0);
    expect(await service.get(tree.digests[0])).toBeUndefined();

    await putAll(putter, tree.directories.slice(12_000));
    expect((await putter.close()).equals(tree.root)).toBe(true);
    expect(await rowCount(schema)).toBe(20_000);
    expect(await closureSize(service, tree.root)).toBe(20_000);
    // One transaction: the check that none is stored yet, one COPY, COMMIT.
    const writes = counted.texts.filter((t) => !t.startsWith("SELECT digest, bytes") && !t.startsWith("COPY (")); // not the reads
    expect(writes.map((t) => t.split(/\s+/)[0])).toEqual(["BEGIN;", "SELECT", "COPY", "COMMIT"]);
    expectConnectionsBack(service);
  });

  it("a small upload does not stream: one statement at close, no connection held while it is open", async () => {
    const service = stores.open();
    const counted = countQueries(service);
    await service.store.init();
    counted.texts = [];
    const tree = generateTree({ directories: 1000, seed: 22 });
    expect(tree.encodedBytes).toBeLessThan(256 * 1024);
    const putter = service.putMultipleStart();
    await putAll(putter, tree.directories);
    expect(counted.texts).toEqual([]);
    expect(service.store.pool.idleCount).toBe(service.store.pool.totalCount);
    await putter.close();
    expect(counted.texts).toEqual([expect.stringMatching(/^INSERT INTO .* unnest/s)]);
  });

  it('uploadMethod "copy" never streams: everything at close', async () => {
    const service = stores.open({ uploadMethod: "copy" });
    const counted = countQueries(service);
    await service.store.init();
    counted.texts = [];
    const tree = generateTree({ directories: 5000, seed: 23 });
    const putter = service.putMultipleStart();
    await putAll(putter, tree.directories);
    expect(counted.texts).toEqual([]);
    await putter.close();
    expect(counted.texts.map((t) => t.split(/\s+/)[0])).toEqual(["BEGIN", "SELECT", "COPY", "COMMIT"]);
  });
});

describe("streaming falls back to storing at close", () => {
  it("a re-upload of a stored tree does not start a COPY", async () => {
    const service = stores.open();
    const counted = countQueries(service);
    const tree = generateTree({ directories: 5000, seed: 24 });
    await upload(service, tree.directories);
    counted.texts = [];
    expect((await upload(service, tree.directories)).equals(tree.root)).toBe(true);
    // The first batch is found stored: rolled back before any COPY; at close, the question which are
    // missing and the touch of the stored ones (spec §10.2), no COPY.
    expect(counted.texts.map((t) => t.split(/\s+/)[0])).toEqual([
      "BEGIN;",
      "SELECT",
      "ROLLBACK",
      "BEGIN",
      "SELECT",
      "WITH",
      "COMMIT",
    ]);
    expect(await rowCount(service.store.schema)).toBe(5000);
    expectConnectionsBack(service);
  });

  it("an upload that reaches stored rows mid-COPY (unique violation) stores the rest at close", async () => {
    const service = stores.open();
    const counted = countQueries(service);
    const stored = generateTree({ directories: 8000, seed: 25 });
    await upload(service, stored.directories);
    const fresh = generateTree({ directories: 5000, seed: 26 });
    const both = combined("both", [fresh, stored]);
    counted.texts = [];
    expect((await upload(service, both.directories)).equals(both.root)).toBe(true);
    const verbs = counted.texts.map((t) => t.split(/\s+/)[0]);
    expect(verbs.slice(0, 3)).toEqual(["BEGIN;", "SELECT", "COPY"]);
    // The streaming COPY is rolled back; close stores the rest and touches what was stored, in one transaction.
    expect(verbs.slice(verbs.indexOf("ROLLBACK") + 1)).toEqual(["BEGIN", "SELECT", "COPY", "WITH", "COMMIT"]);
    expect(await rowCount(service.store.schema)).toBe(8000 + 5000 + 1);
    expect(await closureSize(service, both.root)).toBe(13_001);
    expectConnectionsBack(service);
  });

  it("a row another transaction holds uncommitted: the COPY gives up after the lock timeout, close stores once it commits", async () => {
    const service = stores.open();
    const schema = service.store.schema;
    await service.store.init();
    const tree = generateTree({ directories: 20_000, seed: 27 });
    const other = await stores.admin.connect();
    try {
      await other.query("BEGIN");
      await other.query(`INSERT INTO "${schema}".directories (digest, bytes) VALUES ($1, $2)`, [
        Buffer.from(tree.digests[15_000].bytes),
        Buffer.from(encodeDirectory(tree.directories[15_000])),
      ]);
      const putter = service.putMultipleStart();
      await putAll(putter, tree.directories);
      // The COPY waits for the lock, then gives up (lock_timeout), and its connection comes back.
      await eventually("the COPY to wait for the lock", async () => {
        const { rows } = await stores.admin.query(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = 'castore' AND wait_event_type = 'Lock' AND query LIKE 'COPY "${schema}"%'`,
        );
        return rows[0];
      });
      // the other transaction still holds the row: only the lock timeout can end the stream here
      await eventually("the stream to be given up", async () => (service.store.openStreams === 0 ? true : undefined));
      expectConnectionsBack(service);
      expect(await rowCount(schema)).toBe(0);
      // At close the upload waits for the other transaction (it may yet roll back), then stores the rest.
      const closing = putter.close();
      await sleep(200);
      await other.query("COMMIT");
      expect((await closing).equals(tree.root)).toBe(true);
    } finally {
      await other.query("ROLLBACK").catch(() => undefined);
      other.release();
    }
    expect(await rowCount(schema)).toBe(20_000);
    expectConnectionsBack(service);
  });

  it("8 concurrent overlapping large uploads, in different orders, all succeed with the right rows", async () => {
    const service = stores.open({ poolMax: 10 });
    const shared = generateTree({ directories: 4000, seed: 30 });
    const owns = [31, 32, 33].map((seed) => generateTree({ directories: 3000, seed }));
    const uploads = Array.from({ length: 8 }, (_, i) => {
      const own = owns[i % 3];
      // Half put the shared tree first, half last: streamed rows meet in opposite orders.
      return { ...combined(`u${i}`, i % 2 === 0 ? [shared, own] : [own, shared]), size: 4000 + 3000 + 1 };
    });
    const roots = await Promise.all(uploads.map((u) => upload(service, u.directories)));
    for (const [i, root] of roots.entries()) {
      expect(root.equals(uploads[i].root)).toBe(true);
      expect(await closureSize(service, root)).toBe(uploads[i].size);
    }
    expect(await rowCount(service.store.schema)).toBe(4000 + 3 * 3000 + 8);
    expectConnectionsBack(service);
    await expectNoOpenTransactions();
  });

  it("at most half the pool streams at once; the other uploads store at close", async () => {
    const service = stores.open({ poolMax: 4 });
    expect(service.store.maxStreams).toBe(2);
    const trees = [40, 41, 42, 43].map((seed) => generateTree({ directories: 5000, seed }));
    const putters = trees.map(() => service.putMultipleStart());
    for (const [i, putter] of putters.entries()) await putAll(putter, trees[i].directories);
    expect(service.store.openStreams).toBe(2);
    // A read still gets a connection while four uploads are open.
    expect(await service.get(trees[0].root)).toBeUndefined();
    const roots = await Promise.all(putters.map((p) => p.close()));
    for (const [i, root] of roots.entries()) expect(root.equals(trees[i].root)).toBe(true);
    expect(await rowCount(service.store.schema)).toBe(20_000);
    expectConnectionsBack(service);
  });
});

describe("a streaming upload that fails leaves nothing and gives its connection back", () => {
  async function streamingUpload(service: PostgresDirectoryService, signal?: AbortSignal) {
    await service.store.init();
    const tree = generateTree({ directories: 20_000, seed: 50 });
    const putter = service.putMultipleStart({ signal });
    await putAll(putter, tree.directories.slice(0, 10_000));
    await eventually("the COPY to start", () => copyInProgress(service.store.schema));
    expect(service.store.openStreams).toBe(1);
    return { tree, putter };
  }

  async function expectNothingLeft(service: PostgresDirectoryService): Promise<void> {
    await eventually("the stream to end", async () => (service.store.openStreams === 0 ? true : undefined));
    expect(await rowCount(service.store.schema)).toBe(0);
    expectConnectionsBack(service);
    await expectNoOpenTransactions();
    // The store still works.
    const next = generateTree({ directories: 5000, seed: 51 });
    expect((await upload(service, next.directories)).equals(next.root)).toBe(true);
    expect(await rowCount(service.store.schema)).toBe(5000);
  }

  it("a bad directory after several batches", async () => {
    const service = stores.open();
    const { putter } = await streamingUpload(service);
    await expect(putter.put(danglingDirectory())).rejects.toBeInstanceOf(ClosureError);
    await expect(putter.close()).rejects.toBeInstanceOf(ClosureError);
    await expectNothingLeft(service);
  });

  it("a closure that does not check out at close (two roots)", async () => {
    const service = stores.open();
    const { tree, putter } = await streamingUpload(service);
    await putAll(putter, tree.directories.slice(10_000));
    await putter.put(makeDirectory({ files: [makeFileNode("another-root", new Uint8Array(32), 1)] }));
    await expect(putter.close()).rejects.toBeInstanceOf(ClosureError);
    await expectNothingLeft(service);
  });

  it("putter.abort()", async () => {
    const service = stores.open();
    const { putter } = await streamingUpload(service);
    await putter.abort();
    expect(service.store.openStreams).toBe(0);
    await expectNothingLeft(service);
  });

  it("putter.abort() while a put waits on the COPY (the server blocked on a lock): the connection is closed", async () => {
    const service = stores.open();
    const schema = service.store.schema;
    await service.store.init();
    const tree = generateTree({ directories: 100_000, seed: 52 });
    const other = await stores.admin.connect();
    try {
      // Another transaction holds an early row: the server stops reading the COPY there,
      // the socket fills, and a put() waits for it to drain.
      await other.query("BEGIN");
      await other.query(`INSERT INTO "${schema}".directories (digest, bytes) VALUES ($1, $2)`, [
        Buffer.from(tree.digests[3000].bytes),
        Buffer.from(encodeDirectory(tree.directories[3000])),
      ]);
      const putter = service.putMultipleStart();
      let done = 0;
      const putting = (async () => {
        for (const d of tree.directories) {
          await putter.put(d);
          done++;
        }
      })();
      putting.catch(() => undefined);
      await eventually("the COPY to wait for the lock", async () => {
        const { rows } = await stores.admin.query(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = 'castore' AND wait_event_type = 'Lock' AND query LIKE 'COPY "${schema}"%'`,
        );
        return rows[0];
      });
      // put() is held back once the socket is full (well before the lock times out after 1 s).
      for (let last = -1, i = 0; i < 8 && done !== last; i++) {
        last = done;
        await sleep(100);
      }
      expect(done).toBeLessThan(100_000);
      await putter.abort();
      await expect(putting).rejects.toThrow();
      expect(service.store.openStreams).toBe(0);
      // The blocked connection was closed, not pooled.
      expect(service.store.pool.totalCount).toBe(service.store.pool.idleCount);
    } finally {
      await other.query("ROLLBACK").catch(() => undefined);
      other.release();
    }
    expect(await rowCount(schema)).toBe(0);
    // The server notices the closed connection once its backend reads again (the lock is gone now) and rolls back.
    await eventually("the closed connection's backend to end", async () => {
      const { rows } = await stores.admin.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'castore' AND xact_start IS NOT NULL`,
      );
      return rows[0].n === 0 ? true : undefined;
    });
    const next = generateTree({ directories: 5000, seed: 53 });
    expect((await upload(service, next.directories)).equals(next.root)).toBe(true);
  });

  it("its AbortSignal", async () => {
    const service = stores.open();
    const controller = new AbortController();
    const { tree, putter } = await streamingUpload(service, controller.signal);
    controller.abort(new Error("client went away"));
    await expect(putAll(putter, tree.directories.slice(10_000))).rejects.toBeInstanceOf(AbortError);
    await expectNothingLeft(service);
  });

  it("a client that stops sending: the stream is given up after the idle timeout, and close still stores it all", async () => {
    const service = stores.open({ streamIdleTimeoutMs: 300 });
    const { tree, putter } = await streamingUpload(service);
    await eventually("the idle stream to be given up", async () =>
      service.store.openStreams === 0 ? true : undefined,
    );
    expectConnectionsBack(service);
    await expectNoOpenTransactions();
    expect(await rowCount(service.store.schema)).toBe(0);
    await putAll(putter, tree.directories.slice(10_000));
    expect((await putter.close()).equals(tree.root)).toBe(true);
    expect(await rowCount(service.store.schema)).toBe(20_000);
  });

  it("closing the store rolls back an open stream", async () => {
    const service = stores.open();
    const schema = service.store.schema;
    const { tree, putter } = await streamingUpload(service);
    await service.close();
    expect(service.store.pool.totalCount).toBe(0);
    expect(await rowCount(schema)).toBe(0);
    const error = await putAll(putter, tree.directories.slice(10_000))
      .then(() => putter.close())
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(BackendError);
    expect(await rowCount(schema)).toBe(0);
  });
});

describe("the streaming connection killed mid-upload (pg_terminate_backend)", () => {
  it("nothing is visible until close, which stores everything on a fresh connection; the next upload works", async () => {
    const service = stores.open();
    const schema = service.store.schema;
    const counted = countQueries(service);
    await service.store.init();
    const tree = generateTree({ directories: 20_000, seed: 60 });
    const putter = service.putMultipleStart();
    await putAll(putter, tree.directories.slice(0, 10_000));
    const { pid } = await eventually("the COPY to start", () => copyInProgress(schema));
    await stores.admin.query("SELECT pg_terminate_backend($1)", [pid]);
    await putAll(putter, tree.directories.slice(10_000));
    expect(await rowCount(schema)).toBe(0);
    expect((await putter.close()).equals(tree.root)).toBe(true);
    expect(await rowCount(schema)).toBe(20_000);
    const { rows } = await stores.admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = $1", [pid]);
    expect(rows[0].n).toBe(0);
    expectConnectionsBack(service);

    // The next upload streams again.
    const next = generateTree({ directories: 20_000, seed: 61 });
    counted.texts = [];
    expect((await upload(service, next.directories)).equals(next.root)).toBe(true);
    expect(await rowCount(schema)).toBe(40_000);
    expect(counted.texts.map((t) => t.split(/\s+/)[0])).toEqual(["BEGIN;", "SELECT", "COPY", "COMMIT"]);
  });
});
