/**
 * Layout version 4: the `children` column (postgres-children.ts) of every
 * directory stored before it existed (version 3), filled in from the stored
 * bytes when a store opens a database written by an older castore.
 *
 * Batches of FILL_BATCH directories in digest order, each its own
 * transaction: lock the progress row (`<schema>.children_fill`, so processes
 * that open the store at once take turns instead of doing the same batch),
 * read the next rows after the digest it records, re-hash and decode each,
 * set its children, move the progress row on. The batch that finds the end
 * records version 4 in the same transaction. A fill that stops (a crash, a
 * lost connection) goes on from its last committed batch when the store is
 * opened again. Uploads made meanwhile by this castore write their own.
 *
 * A row that does not hash to its digest or is no valid directory keeps
 * NULL (its children would be made up): it is counted and named in the log.
 * Every read of it reports the corruption anyway; `castore verify` lists it
 * and a repair writes its bytes and children.
 */
import { CorruptionError, Digest, decodeStoredDirectory } from "@castore-ts/core";
import type pg from "pg";
import { childrenColumn } from "./postgres-children.js";
import { CHILDREN_FILLED_VERSION, type SchemaTables } from "./postgres-schema.js";
import { byteaArray } from "./postgres-wire.js";

/** Directories per fill transaction. */
export const FILL_BATCH = 5000;
/** At most one progress line per this many milliseconds (the first and the last always). */
const LOG_EVERY_MS = 5000;
/** Unreadable digests named in the log, at most. */
const SHOWN_UNREADABLE = 5;

export interface ChildrenFillHost {
  readonly schema: string;
  readonly tables: SchemaTables;
  /** Runs `fn` on a pooled connection (PostgresDirectoryStore.withClient). */
  withClient<T>(
    what: string,
    signal: AbortSignal | undefined,
    fn: (client: pg.PoolClient, session: { discard(why: unknown): void; begun(): void }) => Promise<T>,
  ): Promise<T>;
  /** Where progress lines go. */
  log(line: string): void;
}

interface BatchResult {
  /** Version 4 is recorded (by this batch or by another process earlier). */
  finished: boolean;
  /** Directories done so far, all processes together. */
  directories: number;
  unreadable: number;
  /** Digests of unreadable rows in this batch. */
  unreadableHere: string[];
  /** Rows this batch read. */
  read: number;
}

/** Fills the children of every stored directory that may lack them, then records CHILDREN_FILLED_VERSION. */
export async function fillChildren(host: ChildrenFillHost, batchSize = FILL_BATCH): Promise<void> {
  const { tables } = host;
  const prefix = `postgres schema "${host.schema}"`;
  let started = false;
  let lastLog = 0;
  let total = 0;
  const unreadable: string[] = [];
  for (;;) {
    const result = await host.withClient(
      "filling the children of stored directories",
      undefined,
      async (client, session) => {
        await client.query("BEGIN");
        session.begun();
        try {
          const batch = await fillBatch(client, tables, batchSize);
          await client.query("COMMIT");
          return batch;
        } catch (error) {
          await client.query("ROLLBACK").catch(session.discard);
          throw error;
        }
      },
    );
    if (result.read > 0 && !started) {
      started = true;
      total = await estimateRows(host);
      host.log(
        `${prefix}: filling in the child directories of the directories stored before layout version ${CHILDREN_FILLED_VERSION}` +
          `${total > 0 ? `, about ${total}` : ""}; resumable, in batches of ${batchSize}`,
      );
    }
    for (const digest of result.unreadableHere) if (unreadable.length < SHOWN_UNREADABLE) unreadable.push(digest);
    const now = Date.now();
    if (started && !result.finished && now - lastLog >= LOG_EVERY_MS) {
      lastLog = now;
      host.log(
        `${prefix}: children filled for ${result.directories}${total > 0 ? ` of about ${total}` : ""} directories`,
      );
    }
    if (result.finished) {
      if (started) {
        host.log(
          `${prefix}: children filled for all ${result.directories} directories; layout version ${CHILDREN_FILLED_VERSION}` +
            (result.unreadable > 0
              ? `; ${result.unreadable} stored rows are corrupt and have none (${unreadable.join(", ")}` +
                `${result.unreadable > unreadable.length ? ", …" : ""}): castore verify reports them, a repair restores them and their children`
              : ""),
        );
      }
      return;
    }
  }
}

/** The planner's row estimate of the directories table (0 when it has none yet). */
async function estimateRows(host: ChildrenFillHost): Promise<number> {
  return host.withClient("estimating the directories to fill", undefined, async (client) => {
    const { rows } = await client.query<{ n: string | null }>(
      `SELECT reltuples::bigint AS n FROM pg_class WHERE oid = to_regclass($1)`,
      [host.tables.directories],
    );
    return Math.max(0, Number(rows[0]?.n ?? 0));
  });
}

/** One batch, inside the caller's transaction. */
async function fillBatch(client: pg.ClientBase, tables: SchemaTables, batchSize: number): Promise<BatchResult> {
  // Taking turns: a second process waits here for the first one's batch to commit.
  const progress = await client.query<{ after: Buffer | null; directories: string; unreadable: string }>(
    `SELECT after, directories, unreadable FROM ${tables.childrenFill} FOR UPDATE`,
  );
  const state = progress.rows[0];
  const { rows: versions } = await client.query(`SELECT 1 FROM ${tables.version} WHERE version >= $1`, [
    CHILDREN_FILLED_VERSION,
  ]);
  if (!state || versions.length > 0) {
    return {
      finished: true,
      directories: Number(state?.directories ?? 0),
      unreadable: Number(state?.unreadable ?? 0),
      unreadableHere: [],
      read: 0,
    };
  }
  const { rows } = await client.query<[Buffer, Buffer]>({
    text:
      state.after === null
        ? `SELECT digest, bytes FROM ${tables.directories} ORDER BY digest LIMIT $1`
        : `SELECT digest, bytes FROM ${tables.directories} WHERE digest > $2 ORDER BY digest LIMIT $1`,
    values: state.after === null ? [batchSize] : [batchSize, state.after],
    rowMode: "array",
  });
  const digests: Buffer[] = [];
  const columns: Uint8Array[] = [];
  const unreadableHere: string[] = [];
  for (const [digest, bytes] of rows) {
    try {
      // Re-hashed and validated like every read: children read from damaged bytes would be made up.
      decodeStoredDirectory(Digest.fromBytes(digest), bytes);
    } catch (error) {
      if (!(error instanceof CorruptionError)) throw error;
      unreadableHere.push(digest.toString("hex"));
      continue;
    }
    digests.push(digest);
    columns.push(childrenColumn(bytes));
  }
  if (digests.length > 0) {
    // Rows an upload of this castore stored meanwhile have theirs already (not NULL).
    await client.query(
      `UPDATE ${tables.directories} AS t SET children = u.children
       FROM unnest($1::bytea[], $2::bytea[]) AS u(digest, children)
       WHERE t.digest = u.digest AND t.children IS NULL`,
      [byteaArray(digests), byteaArray(columns)],
    );
  }
  const finished = rows.length < batchSize;
  const after = rows.length > 0 ? rows[rows.length - 1][0] : state.after;
  const updated = await client.query<{ directories: string; unreadable: string }>(
    `UPDATE ${tables.childrenFill} SET after = $1, directories = directories + $2, unreadable = unreadable + $3
     RETURNING directories, unreadable`,
    [after, rows.length, unreadableHere.length],
  );
  if (finished) {
    await client.query(`INSERT INTO ${tables.version} (version) VALUES ($1) ON CONFLICT DO NOTHING`, [
      CHILDREN_FILLED_VERSION,
    ]);
  }
  return {
    finished,
    directories: Number(updated.rows[0].directories),
    unreadable: Number(updated.rows[0].unreadable),
    unreadableHere,
    read: rows.length,
  };
}
