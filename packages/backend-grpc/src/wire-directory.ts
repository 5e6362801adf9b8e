/**
 * Directories received off the wire, as bytes (server: an upload; client: a
 * Get response). castore sends and receives Directory messages as bytes
 * (core's codec, not protobuf-es's reflective one): the digest is the hash of
 * those bytes, and a directory read from a store is already encoded.
 *
 * Received bytes go through core's strict decoder first. Bytes that are not
 * canonical but are a valid encoding of a Directory without unknown fields
 * (protobufjs, behind @grpc/grpc-js, writes explicit defaults such as
 * `executable: false`) are decoded leniently (protobuf-es) and re-encoded
 * canonically before hashing (spec §1). Bytes that are not a protobuf
 * encoding at all (truncated, a varint above 2^64-1: DecodeError.malformed)
 * never take that path. A Directory carrying unknown fields,
 * at the top level or in a node, is rejected: it is not canonical, and its
 * digest would silently change on re-encoding.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { DecodeError, type Directory, decodeDirectory, encodeDirectory, ValidationError } from "@castore-ts/core";
import { DirectorySchema } from "@castore-ts/proto";

export interface ReceivedDirectory {
  directory: Directory;
  /** Its canonical encoding: the received bytes when they were canonical. */
  bytes: Uint8Array;
}

/**
 * Decodes received Directory bytes (see the module comment). Throws a
 * ValidationError for bytes that are not a Directory or that carry unknown
 * fields; callers turn it into INVALID_ARGUMENT (server) or a
 * CorruptionError (client).
 */
export function decodeReceived(bytes: Uint8Array): ReceivedDirectory {
  try {
    return { directory: decodeDirectory(bytes), bytes };
  } catch (e) {
    // Bytes that are not protobuf at all are not read leniently either:
    // protobuf-es would truncate a varint above 2^64-1 instead of failing.
    if (!(e instanceof DecodeError) || e.malformed) throw e;
  }
  let directory: Directory;
  try {
    directory = fromBinary(DirectorySchema, bytes);
  } catch (e) {
    throw new ValidationError(`not a valid Directory message: ${(e as Error).message}`);
  }
  const problem = unknownFieldProblem(directory);
  if (problem !== undefined) throw new ValidationError(`Directory is not canonical: ${problem}`);
  return { directory, bytes: encodeDirectory(directory) };
}

/** Where a decoded directory carries unknown fields, or undefined if it has none. */
function unknownFieldProblem(d: Directory): string | undefined {
  if (d.$unknown?.length) return `it has unknown field ${d.$unknown[0].no}`;
  const lists = [
    ["directories", d.directories],
    ["files", d.files],
    ["symlinks", d.symlinks],
  ] as const;
  for (const [list, nodes] of lists) {
    for (let i = 0; i < nodes.length; i++) {
      const unknown = nodes[i].$unknown;
      if (unknown?.length) return `${list}[${i}] has unknown field ${unknown[0].no}`;
    }
  }
  return undefined;
}
