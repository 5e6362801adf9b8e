/**
 * The `postgres:` / `postgresql:` store URL (spec §6): a standard PostgreSQL
 * connection URL plus a few castore options, which are taken out before the
 * rest is handed to `pg`:
 *
 *   postgres://user:pass@host:5432/db
 *   postgresql://user@host/db?schema=castore&sslmode=require
 *   postgres:///db?host=/var/run/postgresql          (Unix socket)
 *
 * castore's options: `schema` (default "castore"), `poolMax` (connections,
 * default 10), `batchSize` (digests per query where getRecursive reads level
 * by level, below directories whose edges are missing; default 32768),
 * `connect_timeout` (seconds, libpq's name; default 10, 0 = wait forever).
 * pg's connection options (PG_OPTIONS: sslmode, sslrootcert, sslcert,
 * sslkey, application_name, options, host, port, user, password, …) are
 * passed through to `pg`, which reads them as libpq would (see the README
 * for pg's reading of sslmode). Any other option is an error: pg would
 * ignore a misspelt `sslmdoe=require` silently and connect unencrypted.
 */
import { InvalidUrlError, readStoreUrl, redactUrl } from "@castore-ts/core";

export const POSTGRES_URL_EXAMPLE =
  "postgres://user:pass@host:5432/db or postgresql://… (?schema=castore&poolMax=10&batchSize=32768&sslmode=…)";

export interface PostgresStoreOptions {
  /** Schema that holds castore's tables; created on first use if absent. Default "castore". */
  schema?: string;
  /** Most pooled connections. Default 10. */
  poolMax?: number;
  /** Digests per query where getRecursive reads level by level (edges missing, a broken stream). Default 32768. */
  batchSize?: number;
  /** Milliseconds to wait for a connection to be established; 0 waits forever. Default 10 000. */
  connectTimeoutMs?: number;
}

export interface PostgresUrl {
  /** The URL without castore's own options, for `pg` (may hold a password: never print it, use redactUrl). */
  connectionString: string;
  options: PostgresStoreOptions;
}

/** castore's own options, taken out of the URL. */
const CASTORE_OPTIONS = ["schema", "poolMax", "batchSize", "connect_timeout"];

/**
 * The query options pg 8 reads from a connection URL (pg-connection-string
 * and ConnectionParameters), passed on. Left out on purpose: `binary` and
 * `replication`, which change the protocol under castore's queries.
 */
const PG_OPTIONS = new Set([
  "host",
  "port",
  "user",
  "password",
  "sslmode",
  "sslrootcert",
  "sslcert",
  "sslkey",
  "ssl",
  "sslnegotiation",
  "uselibpqcompat",
  "application_name",
  "fallback_application_name",
  "options",
  "client_encoding",
  "statement_timeout",
  "lock_timeout",
  "idle_in_transaction_session_timeout",
  "query_timeout",
]);

/** A schema name castore accepts: an unquoted-style SQL identifier (it is still always quoted). */
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

function invalid(url: string, why: string): InvalidUrlError {
  return new InvalidUrlError(
    `invalid postgres store URL ${JSON.stringify(redactUrl(url))}: ${why}; expected ${POSTGRES_URL_EXAMPLE}`,
  );
}

function parsePositiveInt(url: string, name: string, text: string, allowZero = false): number {
  const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(value) || value < (allowZero ? 0 : 1)) {
    throw invalid(url, `${name}=${JSON.stringify(text)} is not a ${allowZero ? "non-negative" : "positive"} integer`);
  }
  return value;
}

/** Checks a schema name (throws InvalidUrlError naming `where`). */
export function checkSchemaName(schema: string, where = "schema"): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new InvalidUrlError(
      `invalid ${where} ${JSON.stringify(schema)}: use letters, digits, _ and $, starting with a letter or _, at most 63 characters`,
    );
  }
  return schema;
}

/** Splits a `postgres:`/`postgresql:` URL into pg's connection string and castore's options. */
export function parsePostgresUrl(input: URL | string): PostgresUrl {
  const { url, text } = readStoreUrl(input, ["postgres:", "postgresql:"], invalid);

  const options: PostgresStoreOptions = {};
  for (const [name, value] of [...url.searchParams]) {
    switch (name) {
      case "schema":
        try {
          options.schema = checkSchemaName(value);
        } catch (e) {
          throw invalid(text, (e as Error).message);
        }
        break;
      case "poolMax":
        options.poolMax = parsePositiveInt(text, name, value);
        break;
      case "batchSize":
        options.batchSize = parsePositiveInt(text, name, value);
        break;
      case "connect_timeout":
        options.connectTimeoutMs = parsePositiveInt(text, name, value, true) * 1000;
        break;
      default:
        if (PG_OPTIONS.has(name)) continue; // pg's business
        throw invalid(
          text,
          `unknown option "${name}" (known: ${CASTORE_OPTIONS.join(", ")}, and pg's: ${[...PG_OPTIONS].join(", ")})`,
        );
    }
    url.searchParams.delete(name);
  }
  // pg reads "postgres:" and "postgresql:" alike; hand it the URL as written, minus castore's options.
  return { connectionString: url.href, options };
}
