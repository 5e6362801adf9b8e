import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPostgresTestServer, type PostgresTestServer } from "./index.js";

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe("startPostgresTestServer", () => {
  let server: PostgresTestServer;

  beforeAll(async () => {
    server = await startPostgresTestServer();
    console.log(`[postgres.test] kind=${server.kind} url=${server.url}`);
  }, 180_000);

  afterAll(async () => {
    await server?.stop();
  }, 60_000);

  it("describes the server it started", () => {
    expect(server.url).toBe(`postgres://postgres@${server.host}:${server.port}/${server.database}`);
    if (server.kind !== "env") {
      expect(server.host).toBe("127.0.0.1");
      expect(server.database).toBe("castore_test");
    }
  });

  it("answers select 1 in the test database", async () => {
    const rows = await query<{ one: number; db: string }>(server.url, "select 1 as one, current_database() as db");
    expect(rows).toEqual([{ one: 1, db: server.database }]);
  });

  it("keeps its data across restart()", async (ctx) => {
    if (!server.canRestart) return ctx.skip("the server from $CASTORE_TEST_POSTGRES_URL is not ours to restart");
    await query(server.url, "create table if not exists restart_probe (v text)");
    await query(server.url, "insert into restart_probe values ($1)", ["before restart"]);

    const held = new pg.Client({ connectionString: server.url });
    held.on("error", () => undefined); // the restart cuts this connection
    await held.connect();

    await server.restart();

    await expect(held.query("select 1")).rejects.toThrow();
    await held.end().catch(() => undefined);
    const rows = await query<{ v: string }>(server.url, "select v from restart_probe");
    expect(rows).toEqual([{ v: "before restart" }]);
    expect(await query(server.url, "select 1 as one")).toEqual([{ one: 1 }]);
  }, 120_000);

  it("restarts after a downtime, refusing connections meanwhile", async (ctx) => {
    if (!server.canRestart) return ctx.skip("the server from $CASTORE_TEST_POSTGRES_URL is not ours to restart");
    const restarting = server.restart({ downtimeMs: 1_500 });
    await new Promise((r) => setTimeout(r, 700));
    await expect(query(server.url, "select 1")).rejects.toThrow();
    await restarting;
    expect(await query(server.url, "select 2 as two")).toEqual([{ two: 2 }]);
  }, 120_000);

  it("stop() can be called twice", async () => {
    const other = await startPostgresTestServer({ database: "second_db" });
    try {
      const rows = await query<{ db: string }>(other.url, "select current_database() as db");
      expect(rows[0]?.db).toBe(other.kind === "env" ? other.database : "second_db");
    } finally {
      await other.stop();
      await other.stop();
    }
    if (other.kind !== "env") await expect(query(other.url, "select 1")).rejects.toThrow();
  }, 180_000);
});
