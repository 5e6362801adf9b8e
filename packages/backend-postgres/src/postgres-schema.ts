/**
 * The table layout of a castore schema, one step per version. A store
 * applies, in one transaction under an advisory lock, every DDL step past the
 * version recorded in `<schema>.schema_version`, then records it. Each
 * step's DDL is idempotent (IF NOT EXISTS), so a step that a crash cut short
 * simply runs again.
 *
 * Version 4 is a data step, not DDL: the `children` column of every
 * directory stored before version 3 is filled in from its stored bytes, in
 * batches, each its own transaction that records how far it got in
 * `<schema>.children_fill` (postgres-children-fill.ts). A new, empty schema
 * goes to version 4 at once.
 *
 * Version 5 is garbage collection and refs (spec §9, §10): a `used_at`
 * column on directories, blobs and chunks (when each was last written or
 * used; rows stored before get the time of the upgrade), the `refs` table,
 * and the function the collector reads directories with inside the database
 * (postgres-directory-scan.ts). A schema still filling its children (version
 * 3) gets the version 5 DDL at once and records 5 when the fill is done.
 */
import { directoryScanFunction } from "./postgres-directory-scan.js";

/** The table layout this code writes and reads; recorded in `<schema>.schema_version`. */
export const SCHEMA_VERSION = 5;
/** The layout from which every upload also writes each directory's `children` (older rows may lack theirs). */
export const CHILDREN_COLUMN_VERSION = 3;
/** The layout the children fill records when every directory has its `children` (postgres-children-fill.ts). */
export const CHILDREN_FILLED_VERSION = 4;

/** A double-quoted SQL identifier. Names are checked beforehand; quoting keeps them exact. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The quoted, schema-qualified names of castore's tables in `schema`. */
export interface SchemaTables {
  /** Directories: digest → canonical protobuf bytes, and the digests of its child directories (postgres-children.ts). */
  directories: string;
  /** Blob chunks: digest → bytes (≤ 512 KiB each with core's chunking). */
  chunks: string;
  /** Blobs, one row each: digest, size, number of chunks. A row here makes the blob visible. */
  blobs: string;
  /** Each blob's chunk list, one small row per chunk: (blob, idx) → chunk digest, size. */
  blobChunks: string;
  /** Refs (spec §9): name (ASCII, byte order) → root digest. */
  refs: string;
  /** The collector's reader of stored directory bytes (postgres-directory-scan.ts). */
  directoryScan: string;
  /** How many garbage collections have started (one row): what a ref's set checks it raced none (postgres-ref-store.ts). */
  collections: string;
  /** How far the fill of `children` for rows stored before version 3 got (one row). */
  childrenFill: string;
  /** Which layout versions were applied. */
  version: string;
}

export function schemaTables(schema: string): SchemaTables {
  const q = ident(schema);
  return {
    directories: `${q}.directories`,
    chunks: `${q}.chunks`,
    blobs: `${q}.blobs`,
    blobChunks: `${q}.blob_chunks`,
    refs: `${q}.refs`,
    directoryScan: `${q}.castore_directory_scan`,
    collections: `${q}.collections`,
    childrenFill: `${q}.children_fill`,
    version: `${q}.schema_version`,
  };
}

/** DDL statements that bring a schema from `version - 1` to `version` (4 is the children fill: see above). */
export function migrations(t: SchemaTables): { version: number; statements: string[] }[] {
  return [
    {
      // Directories: digest → canonical directory bytes.
      version: 1,
      statements: [
        `CREATE TABLE IF NOT EXISTS ${t.directories} (
           digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
           bytes bytea NOT NULL
         )`,
      ],
    },
    {
      // Blobs: chunks by digest, and each blob as its header row plus its chunk list as rows
      // (no row grows with the blob: a 4 GiB blob is ~16 000 rows of 40 bytes, not one of 600 KiB).
      version: 2,
      statements: [
        `CREATE TABLE IF NOT EXISTS ${t.chunks} (
           digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
           data bytea NOT NULL
         )`,
        // Chunks are stored uncompressed (as in lmdb): pglz, PostgreSQL's default, made
        // storing 512 KiB chunks of incompressible bytes about 3.5 times slower (measured).
        `ALTER TABLE ${t.chunks} ALTER COLUMN data SET STORAGE EXTERNAL`,
        `CREATE TABLE IF NOT EXISTS ${t.blobs} (
           digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
           size bigint NOT NULL CHECK (size >= 0),
           chunk_count integer NOT NULL CHECK (chunk_count >= 0)
         )`,
        `CREATE TABLE IF NOT EXISTS ${t.blobChunks} (
           blob bytea NOT NULL,
           idx integer NOT NULL CHECK (idx >= 0),
           chunk bytea NOT NULL CHECK (octet_length(chunk) = 32),
           size integer NOT NULL CHECK (size >= 0),
           PRIMARY KEY (blob, idx)
         )`,
      ],
    },
    {
      // Each directory's child directories, in the directory's own row (so written with it,
      // all or nothing), so that getRecursive can read a closure with one recursive query.
      // NULL: not known yet (a row stored before this version, until the fill reaches it).
      version: 3,
      statements: [
        // Instant on a table of any size: a nullable column without default, and no CHECK
        // (which would scan the whole table under an exclusive lock).
        `ALTER TABLE ${t.directories} ADD COLUMN IF NOT EXISTS children bytea`,
      ],
    },
    {
      // Garbage collection (spec §10) and refs (spec §9).
      version: 5,
      statements: [
        // `used_at`: when the row was last written or used (the touch rules, spec §10.2).
        // Instant on a table of any size: a non-volatile default (now(), the time of the upgrade)
        // is stored once in the catalog for every existing row, not written into each. New rows
        // then take the time they are written (clock_timestamp(): not their transaction's start,
        // which a long upload would leave far behind). Not indexed, on purpose: an UPDATE that
        // changes no indexed column can stay on its page (HOT), and touching is frequent; the
        // collector reads the whole table once anyway.
        ...[t.directories, t.blobs, t.chunks].flatMap((table) => [
          `ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS used_at timestamptz NOT NULL DEFAULT now()`,
          `ALTER TABLE ${table} ALTER COLUMN used_at SET DEFAULT clock_timestamp()`,
        ]),
        // Ref names are ASCII (spec §9): the "C" collation orders them by bytes, as every store lists them.
        `CREATE TABLE IF NOT EXISTS ${t.refs} (
           name text COLLATE "C" PRIMARY KEY,
           digest bytea NOT NULL CHECK (octet_length(digest) = 32)
         )`,
        directoryScanFunction(t.directoryScan),
        // One row: every collection counts itself in before it reads the refs; a ref's set
        // re-protects its tree if one started since it began (postgres-ref-store.ts).
        `CREATE TABLE IF NOT EXISTS ${t.collections} (
           singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
           started bigint NOT NULL DEFAULT 0,
           last_started_at timestamptz
         )`,
        `INSERT INTO ${t.collections} DEFAULT VALUES ON CONFLICT DO NOTHING`,
      ],
    },
  ];
}

/**
 * The fill's progress row (version 4, postgres-children-fill.ts): rows up to
 * digest `after` (bytewise) have their children. Created with the version 3
 * step only when an older schema is upgraded: a new one has nothing to fill.
 */
export function childrenFillStatements(t: SchemaTables): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${t.childrenFill} (
       singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
       after bytea,
       directories bigint NOT NULL DEFAULT 0,
       unreadable bigint NOT NULL DEFAULT 0,
       started_at timestamptz NOT NULL DEFAULT now()
     )`,
    `INSERT INTO ${t.childrenFill} DEFAULT VALUES ON CONFLICT DO NOTHING`,
  ];
}
