/**
 * The one thing the garbage collector (postgres-collector.ts) needs from a
 * directory's bytes that no column holds: the digests of its files (which
 * blobs it keeps alive) and its size in the sense of spec §1 (entries plus
 * the declared sizes of its child directories: a parent's is larger than any
 * child's, which orders deletions parents first). A small PL/pgSQL scanner of
 * the protobuf wire format, so the collector marks and sorts inside the
 * database without sending every directory to the client.
 *
 * Like postgres-children.ts, it reads canonical bytes that core checked when
 * they were stored: field 1 (DirectoryNode: its field 3, size), field 2
 * (FileNode: its field 2, digest) and field 3 (SymlinkNode) are counted,
 * every other field is skipped by its wire type. It does not re-hash (there
 * is no BLAKE3 in PostgreSQL). Bytes it cannot parse give NULLs, never an
 * error: the collector stops on a live directory it cannot read and deletes
 * an unreadable garbage one first (deleting a parent early is always safe).
 */

/** `CREATE OR REPLACE FUNCTION <name>(bytes bytea, OUT tree_size numeric, OUT files bytea[])`. */
export function directoryScanFunction(name: string): string {
  // bigint arithmetic per byte (numeric there made it several times slower): a varint past 56 bits
  // (only a DirectoryNode size can be one) goes on in numeric; sizes are summed in numeric.
  return `CREATE OR REPLACE FUNCTION ${name}(bytes bytea, OUT tree_size numeric, OUT files bytea[])
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $scan$
DECLARE
  n integer := octet_length(bytes);
  pos integer := 0;
  tag integer;
  node_tag integer;
  node_end integer;
  b integer;
  len bigint;
  shift bigint;
  big numeric;
  entries bigint := 0;
BEGIN
  tree_size := 0;
  files := '{}';
  WHILE pos < n LOOP
    node_tag := get_byte(bytes, pos);
    pos := pos + 1;
    -- Every Directory field is length-delimited (wire type 2): a varint length, then the node.
    len := 0; shift := 1;
    LOOP
      IF pos >= n OR shift > 34359738368 THEN tree_size := NULL; files := NULL; RETURN; END IF;
      b := get_byte(bytes, pos); pos := pos + 1;
      len := len + (b & 127) * shift;
      EXIT WHEN b < 128;
      shift := shift * 128;
    END LOOP;
    IF node_tag NOT IN (10, 18, 26) OR pos + len > n THEN tree_size := NULL; files := NULL; RETURN; END IF;
    node_end := pos + len::integer;
    entries := entries + 1;
    WHILE pos < node_end LOOP
      tag := get_byte(bytes, pos);
      pos := pos + 1;
      -- A varint (wire type 0) or a length (wire type 2) follows; nothing else is in a node.
      IF tag & 7 NOT IN (0, 2) THEN tree_size := NULL; files := NULL; RETURN; END IF;
      len := 0; shift := 1; big := NULL;
      LOOP
        IF pos >= node_end THEN tree_size := NULL; files := NULL; RETURN; END IF;
        b := get_byte(bytes, pos); pos := pos + 1;
        IF big IS NULL THEN
          len := len + (b & 127) * shift;
        ELSE
          big := big + (b & 127) * shift::numeric * 72057594037927936; -- shift is 128 here: 2^63
        END IF;
        EXIT WHEN b < 128;
        IF big IS NULL AND shift = 72057594037927936 THEN
          -- Past 56 bits: the rest counts in numeric (a varint has at most 10 bytes).
          big := len; shift := 128;
        ELSE
          shift := shift * 128;
        END IF;
        IF big IS NOT NULL AND shift > 128 THEN tree_size := NULL; files := NULL; RETURN; END IF;
      END LOOP;
      IF tag & 7 = 0 THEN
        -- DirectoryNode.size (field 3): the child's own size counts into its parent's.
        IF node_tag = 10 AND tag = 24 THEN
          tree_size := tree_size + coalesce(big, len);
        END IF;
      ELSE
        IF big IS NOT NULL OR pos + len > node_end THEN tree_size := NULL; files := NULL; RETURN; END IF;
        -- FileNode.digest (field 2): the blob this file keeps.
        IF node_tag = 18 AND tag = 18 THEN files := files || substring(bytes FROM pos + 1 FOR len::integer); END IF;
        pos := pos + len::integer;
      END IF;
    END LOOP;
    IF pos <> node_end THEN tree_size := NULL; files := NULL; RETURN; END IF;
  END LOOP;
  tree_size := tree_size + entries;
END
$scan$`;
}
