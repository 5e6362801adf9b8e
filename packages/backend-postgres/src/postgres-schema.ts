/**
 * The table layout of a castore schema, one step per version. A store
 * applies, in one transaction under an advisory lock, every DDL step past the
 * version recorded in `<schema>.schema_version`, then records it. Each
 * step's DDL is idempotent (IF NOT EXISTS), so a step that a crash cut short
 * simply runs again.
 *
 * Version 4 is a data step, not DDL: the edges of every directory stored
 * before version 3 are filled in from the stored rows, in batches, each its
 * own transaction that records how far it got in `<schema>.edges_fill`
 * (postgres-edges-fill.ts). A new, empty schema goes to version 4 at once.
 */

/** The table layout this code writes and reads; recorded in `<schema>.schema_version`. */
export const SCHEMA_VERSION = 4;
/** The layout from which every upload also writes its directories' edges (the table exists; older rows may lack theirs). */
export const EDGES_TABLE_VERSION = 3;

/** A double-quoted SQL identifier. Names are checked beforehand; quoting keeps them exact. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The quoted, schema-qualified names of castore's tables in `schema`. */
export interface SchemaTables {
  /** Directories: digest → canonical protobuf bytes. */
  directories: string;
  /** Blob chunks: digest → bytes (≤ 512 KiB each with core's chunking). */
  chunks: string;
  /** Blobs, one row each: digest, size, number of chunks. A row here makes the blob visible. */
  blobs: string;
  /** Each blob's chunk list, one small row per chunk: (blob, idx) → chunk digest, size. */
  blobChunks: string;
  /** Child edges: (parent, idx) → child, idx being the child's first position in the parent's `directories`. */
  edges: string;
  /** How far the fill of edges for rows stored before version 3 got (one row). */
  edgesFill: string;
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
    edges: `${q}.edges`,
    edgesFill: `${q}.edges_fill`,
    version: `${q}.schema_version`,
  };
}

/** DDL statements that bring a schema from `version - 1` to `version` (up to EDGES_TABLE_VERSION; see above for 4). */
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
      // Edges: each directory's distinct child directories, written in the same transaction
      // as the directory's row, so that getRecursive can read a closure with one recursive
      // query. The primary key (parent, idx) is the index that query walks, each parent's
      // children in list order (idx: where the child is first named), as breadth first does.
      version: 3,
      statements: [
        `CREATE TABLE IF NOT EXISTS ${t.edges} (
           parent bytea NOT NULL CHECK (octet_length(parent) = 32),
           idx integer NOT NULL CHECK (idx >= 0),
           child bytea NOT NULL CHECK (octet_length(child) = 32),
           PRIMARY KEY (parent, idx)
         )`,
        // The fill's progress: directories up to digest `after` (bytewise) have their edges.
        `CREATE TABLE IF NOT EXISTS ${t.edgesFill} (
           singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
           after bytea,
           directories bigint NOT NULL DEFAULT 0,
           unreadable bigint NOT NULL DEFAULT 0,
           started_at timestamptz NOT NULL DEFAULT now()
         )`,
        `INSERT INTO ${t.edgesFill} DEFAULT VALUES ON CONFLICT DO NOTHING`,
      ],
    },
  ];
}
