/**
 * The table layout of a castore schema, one step per version. A store
 * applies, in one transaction under an advisory lock, every step past the
 * version recorded in `<schema>.schema_version`, then records the newest.
 * Each step's DDL is idempotent (IF NOT EXISTS), so a step that a crash cut
 * short simply runs again.
 */

/** The table layout this code writes and reads; recorded in `<schema>.schema_version`. */
export const SCHEMA_VERSION = 2;

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
    version: `${q}.schema_version`,
  };
}

/** Statements that bring a schema from `version - 1` to `version`. */
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
  ];
}
