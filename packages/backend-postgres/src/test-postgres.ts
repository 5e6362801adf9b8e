/**
 * Test support: one PostgreSQL test server per test file, and services each
 * on a fresh schema of it (isolation without a database per test).
 */
import { randomBytes } from "node:crypto";
import { startPostgresTestServer, type PostgresTestServer, type PostgresTestServerOptions } from "@castore-ts/testing";
import pg from "pg";
import { afterAll, afterEach, beforeAll } from "vitest";
import {
  PostgresBlobStore,
  PostgresDirectoryService,
  type PostgresDirectoryServiceOptions,
  type PostgresStoreConfig,
} from "./index.js";

/**
 * One PostgreSQL test server for the calling test file: started before its
 * tests, every service opened in a test closed and its schema dropped after
 * that test, the server stopped after the file.
 */
export function postgresTestStoresForFile(options: PostgresTestServerOptions = {}): PostgresTestStores {
  const stores = new PostgresTestStores();
  beforeAll(() => stores.start(options), 180_000);
  afterEach(() => stores.cleanup());
  afterAll(() => stores.stop(), 180_000); // stopping a server is slow on a loaded machine
  return stores;
}

export class PostgresTestStores {
  private readonly services: { close(): Promise<void> }[] = [];
  private readonly schemas = new Set<string>();
  private running?: { server: PostgresTestServer; admin: pg.Pool };

  async start(options: PostgresTestServerOptions = {}): Promise<void> {
    // synchronous_commit=on: a restart of the test server may kill it outright, which
    // must not lose acknowledged commits (fsync stays off: the OS keeps them).
    const server = await startPostgresTestServer({
      ...options,
      settings: { synchronous_commit: "on", ...options.settings },
    });
    const admin = new pg.Pool({ connectionString: server.url, max: 4 });
    admin.on("error", () => undefined); // idle admin connections die on server restarts
    this.running = { server, admin };
  }

  private get started(): { server: PostgresTestServer; admin: pg.Pool } {
    if (!this.running) throw new Error("PostgresTestStores used before start() (or after stop())");
    return this.running;
  }

  get server(): PostgresTestServer {
    return this.started.server;
  }

  /** A superuser pool on the test database, for inspecting and breaking things behind the store's back. */
  get admin(): pg.Pool {
    return this.started.admin;
  }

  /** A fresh schema name (not created yet). */
  freshSchema(): string {
    const schema = `t_${randomBytes(6).toString("hex")}`;
    this.schemas.add(schema);
    return schema;
  }

  /** The server's URL with extra query parameters. */
  url(params: Record<string, string> = {}): string {
    const url = new URL(this.server.url);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    return url.href;
  }

  /** A service on a fresh schema (closed and dropped by stop()/cleanup()). */
  open(opts: PostgresDirectoryServiceOptions = {}, params: Record<string, string> = {}): PostgresDirectoryService {
    const service = PostgresDirectoryService.open(this.url({ schema: this.freshSchema(), ...params }), opts);
    this.services.push(service);
    return service;
  }

  /** A blob store with a pool of its own on `schema` (default: a fresh one), closed and dropped by cleanup(). */
  openBlobs(schema: string = this.freshSchema(), config: PostgresStoreConfig = {}): PostgresBlobStore {
    this.schemas.add(schema);
    const store = PostgresBlobStore.open(this.url({ schema }), config);
    this.services.push(store);
    return store;
  }

  /** Remembers a service opened elsewhere so cleanup() closes it. */
  track<T extends PostgresDirectoryService>(service: T): T {
    this.services.push(service);
    this.schemas.add(service.store.schema);
    return service;
  }

  /** Closes every service opened so far and drops their schemas. */
  async cleanup(): Promise<void> {
    await Promise.all(this.services.splice(0).map((s) => s.close().catch(() => undefined)));
    for (const schema of this.schemas) await this.dropSchema(schema);
    this.schemas.clear();
  }

  async dropSchema(schema: string): Promise<void> {
    await this.admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    await this.cleanup();
    await this.admin.end().catch(() => undefined);
    await this.server.stop();
    this.running = undefined;
  }
}

/**
 * Counts every query the store's connections send, including COPY (wrapped
 * when each connection opens): of a directory service's store, or of a blob
 * store's (its `db`).
 */
export function countQueries(of: PostgresDirectoryService | PostgresBlobStore): { count: number; texts: string[] } {
  const counter = { count: 0, texts: [] as string[] };
  const pool = of instanceof PostgresBlobStore ? of.db.pool : of.store.pool;
  pool.on("connect", (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      counter.count++;
      const first = args[0] as string | { text?: string } | undefined;
      counter.texts.push(typeof first === "string" ? first : (first?.text ?? "?"));
      return query(...args);
    };
  });
  return counter;
}
