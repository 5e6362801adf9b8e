import { InvalidUrlError, openDirectoryService } from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import { PostgresDirectoryService } from "./index.js";
import { parsePostgresUrl } from "./postgres-url.js";

describe("parsePostgresUrl", () => {
  it("passes a plain URL through unchanged", () => {
    expect(parsePostgresUrl("postgres://u:p@db.example:5433/castore")).toEqual({
      connectionString: "postgres://u:p@db.example:5433/castore",
      options: {},
    });
    expect(parsePostgresUrl("postgresql://u@h/d").connectionString).toBe("postgresql://u@h/d");
  });

  it("takes out castore's options and keeps pg's", () => {
    const { connectionString, options } = parsePostgresUrl(
      "postgres://u@h/d?schema=t_1&sslmode=require&poolMax=4&batchSize=100&connect_timeout=3&application_name=x",
    );
    expect(options).toEqual({ schema: "t_1", poolMax: 4, batchSize: 100, connectTimeoutMs: 3000 });
    const rest = new URL(connectionString);
    expect([...rest.searchParams]).toEqual([
      ["sslmode", "require"],
      ["application_name", "x"],
    ]);
  });

  it("passes every option pg reads from a URL on to pg", () => {
    const pgOptions: [string, string][] = [
      ["host", "/tmp"],
      ["port", "5433"],
      ["user", "u"],
      ["password", "p"],
      ["sslmode", "verify-full"],
      ["sslrootcert", "/ca.pem"],
      ["sslcert", "/c.pem"],
      ["sslkey", "/k.pem"],
      ["ssl", "true"],
      ["sslnegotiation", "direct"],
      ["uselibpqcompat", "true"],
      ["application_name", "a"],
      ["fallback_application_name", "b"],
      ["options", "-c statement_timeout=1"],
      ["client_encoding", "UTF8"],
      ["statement_timeout", "1000"],
      ["lock_timeout", "1000"],
      ["idle_in_transaction_session_timeout", "1000"],
      ["query_timeout", "1000"],
    ];
    const { connectionString } = parsePostgresUrl(`postgres:///d?${new URLSearchParams(pgOptions)}`);
    expect([...new URL(connectionString).searchParams]).toEqual(pgOptions);
  });

  it("keeps Unix socket forms for pg", () => {
    expect(parsePostgresUrl("postgres:///castore?host=/var/run/postgresql&schema=s")).toEqual({
      connectionString: "postgres:///castore?host=%2Fvar%2Frun%2Fpostgresql",
      options: { schema: "s" },
    });
  });

  it.each([
    ["http://h/d", /not "postgres:"/],
    ["postgres://h/d?schema=a-b", /invalid schema/],
    ["postgres://h/d?schema=", /invalid schema/],
    ["postgres://h/d?schema=1abc", /invalid schema/],
    ["postgres://h/d?poolMax=0", /poolMax="0" is not a positive integer/],
    ["postgres://h/d?batchSize=ten", /batchSize="ten"/],
    [
      "postgres://h/d?sslmdoe=require",
      /unknown option "sslmdoe" \(known: schema, poolMax, batchSize, connect_timeout, and pg's: .*sslmode/,
    ],
    ["postgres://h/d?schema=s&batchsize=10", /unknown option "batchsize"/],
    ["postgres://h/d?binary=true", /unknown option "binary"/],
    ["postgres://h/d#frag", /fragment/],
  ])("rejects %s", (url, message) => {
    expect(() => parsePostgresUrl(url)).toThrow(InvalidUrlError);
    expect(() => parsePostgresUrl(url)).toThrow(message);
  });

  it("never shows the password in its errors", () => {
    try {
      parsePostgresUrl("postgres://u:hunter2@h/d?schema=bad-name");
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).not.toContain("hunter2");
      expect((e as Error).message).toContain("u:***@h");
    }
  });
});

describe("URL registration", () => {
  it("opens postgres: and postgresql: URLs without connecting, naming host, port, database and schema", async () => {
    for (const scheme of ["postgres", "postgresql", "POSTGRES"]) {
      const service = await openDirectoryService(`${scheme}://u:secret@127.0.0.1:1/somedb?schema=abc&batchSize=7`);
      expect(service).toBeInstanceOf(PostgresDirectoryService);
      const store = (service as PostgresDirectoryService).store;
      expect(store.backend).toBe("postgres://127.0.0.1:1/somedb?schema=abc");
      expect(store.endpoint).toEqual({ host: "127.0.0.1", port: 1, database: "somedb", user: "u" });
      expect(store.batchSize).toBe(7);
      await service.close();
    }
  });

  it("defaults to schema castore and port 5432", async () => {
    const service = PostgresDirectoryService.open("postgres://u@db.internal/castore");
    expect(service.store.backend).toBe("postgres://db.internal:5432/castore?schema=castore");
    await service.close();
  });
});
