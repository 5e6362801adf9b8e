/**
 * Checks on a Directory that came off the wire.
 *
 * connect-es decodes messages with protobuf-es, which accepts any valid
 * protobuf encoding and keeps unknown fields in `$unknown`. castore's decision
 * (both server and client): a Directory carrying unknown fields, at the top
 * level or in any node, is rejected, because it is not canonical (spec §1) and
 * its digest would silently change on re-encoding. Everything else is
 * re-encoded canonically (core's `encodeDirectory`) before it is hashed, so an
 * equivalent but non-canonical encoding (fields out of order, defaults
 * written) names the same directory, as in tvix.
 */
import type { Directory } from "@castore/core";

/** Describes where a received directory carries unknown fields, or undefined if it has none. */
export function unknownFieldProblem(d: Directory): string | undefined {
  if (d.$unknown?.length) return `Directory has unknown field ${d.$unknown[0].no}`;
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
