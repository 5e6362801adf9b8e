/**
 * Fault test: `castore serve --store postgres://…` while the database is
 * restarted and while every other backend connection is terminated
 * (pg_terminate_backend), with uploads and recursive reads running through
 * gRPC clients. In-flight calls may fail, but only with UNAVAILABLE or
 * INTERNAL and a message; once the database is back, calls succeed without
 * restarting castore; every acknowledged upload reads back in full; and
 * `castore verify` (whole store) is clean.
 *
 * Runs the built CLI (@castore-ts/cli/bin) and talks to it with the gRPC client
 * (@castore-ts/backend-grpc).
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrpcDirectoryService, grpcCodeOf } from "@castore-ts/backend-grpc";
import { type OverlappingTree, overlappingTree, taggedDirectory } from "@castore-ts/conformance";
import { type PostgresTestServer, runCastore, startCastoreServe, startPostgresTestServer } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

const INTERNAL = 13;
const UNAVAILABLE = 14;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("postgres: database faults under castore serve", () => {
  let server: PostgresTestServer;
  beforeAll(async () => {
    server = await startPostgresTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function scenario(schema: string, fault: () => Promise<void>) {
    const u = new URL(server.url);
    u.searchParams.set("schema", schema);
    u.searchParams.set("connect_timeout", "5");
    const store = u.toString();
    const serve = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", store]);
    const shared = Array.from({ length: 40 }, (_, i) => taggedDirectory(`leaf-${i}`));
    const acknowledged: OverlappingTree[] = [];
    const failures: { op: string; code: number | undefined; message: string }[] = [];
    let stop = false;
    let calls = 0;
    const clients = Array.from({ length: 6 }, () =>
      GrpcDirectoryService.fromUrl(serve.url, { connectTimeoutMs: 5_000 }),
    );
    try {
      // One upload first, so readers have something to read.
      const first = overlappingTree(`${schema}-first`, shared, 50);
      const putter0 = clients[0].putMultipleStart();
      for (const d of first.leavesToRoot) await putter0.put(d);
      await putter0.close();
      acknowledged.push(first);

      const workers = clients.map(async (client, c) => {
        for (let i = 0; !stop; i++) {
          calls++;
          const upload = c % 2 === 0;
          try {
            if (upload) {
              const tree = overlappingTree(`${schema}-c${c}-u${i}`, shared, 300);
              const putter = client.putMultipleStart();
              for (const d of tree.leavesToRoot) await putter.put(d);
              expect((await putter.close()).hex).toBe(tree.root.hex);
              acknowledged.push(tree);
            } else {
              const tree = acknowledged[i % acknowledged.length];
              let n = 0;
              for await (const _ of client.getRecursive(tree.root)) n++;
              // A read that ended early without an error would be a bug.
              expect(n).toBe(tree.closureSize);
            }
          } catch (e) {
            failures.push({
              op: upload ? "upload" : "getRecursive",
              code: grpcCodeOf(e),
              message: (e as Error).message,
            });
            await sleep(100);
          }
        }
      });
      await sleep(1_000); // calls in flight
      await fault();
      await sleep(500);
      stop = true;
      await Promise.all(workers);

      // Every failure is UNAVAILABLE or INTERNAL, with a message.
      for (const f of failures) {
        expect([UNAVAILABLE, INTERNAL], `${f.op}: ${f.message}`).toContain(f.code);
        expect(f.message.length).toBeGreaterThan(10);
      }

      // Castore was not restarted: calls succeed now, on every client.
      for (const [c, client] of clients.entries()) {
        const tree = overlappingTree(`${schema}-after-${c}`, shared, 20);
        const putter = client.putMultipleStart();
        for (const d of tree.leavesToRoot) await putter.put(d);
        expect((await putter.close()).hex).toBe(tree.root.hex);
        acknowledged.push(tree);
      }
      for (const tree of acknowledged) {
        let n = 0;
        for await (const _ of clients[0].getRecursive(tree.root)) n++;
        expect(n, `closure of ${tree.root.hex}`).toBe(tree.closureSize);
      }
      expect(serve.child.exitCode).toBeNull();
    } finally {
      stop = true;
      await Promise.all(clients.map((c) => c.close()));
      await serve.stop();
    }
    const verified = await runCastore(CASTORE_BIN, ["verify", store]);
    expect(verified.stderr).toMatch(/ 0 problems/);
    expect(verified.code).toBe(0);
    return { calls, failures, acknowledged: acknowledged.length };
  }

  it("database restarted (with downtime) during uploads and reads", { timeout: 180_000 }, async (context) => {
    if (server.kind === "env") context.skip("the server from $CASTORE_TEST_POSTGRES_URL cannot be restarted");
    const r = await scenario("faults_restart", () => server.restart({ downtimeMs: 1_500 }));
    console.log(
      `postgres restart: ${r.calls} calls, ${r.failures.length} failed (${[...new Set(r.failures.map((f) => `${f.code}: ${f.message}`))].slice(0, 3).join(" | ")}), ${r.acknowledged} uploads acknowledged`,
    );
  });

  it("all castore connections terminated during uploads and reads", { timeout: 180_000 }, async () => {
    const r = await scenario("faults_terminate", async () => {
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      try {
        for (let k = 0; k < 3; k++) {
          await admin.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname = current_database()",
          );
          await sleep(300);
        }
      } finally {
        await admin.end();
      }
    });
    console.log(
      `postgres terminate: ${r.calls} calls, ${r.failures.length} failed (${[...new Set(r.failures.map((f) => `${f.code}: ${f.message}`))].slice(0, 3).join(" | ")}), ${r.acknowledged} uploads acknowledged`,
    );
  });
});
