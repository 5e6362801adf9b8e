/**
 * The blob manifest object: a blob's chunk list, written after all its
 * chunks (README "Blobs"):
 *
 *   "castore-blob/1\n"                           15 bytes
 *   per chunk, in order: digest (32 bytes), size (u32 big-endian)
 *
 * Fixed-size records keep it small (36 bytes a chunk: about 144 KiB for a
 * 1 GiB blob of 256 KiB chunks) and make a damaged one detectable by length.
 */
import { CorruptionError, DIGEST_LENGTH, Digest, type ChunkMeta } from "@castore-ts/core";

export const MANIFEST_MAGIC = Buffer.from("castore-blob/1\n", "latin1");
export const MANIFEST_RECORD_LENGTH = DIGEST_LENGTH + 4;
/** u32: a chunk is at most 4 GiB − 1 bytes (castore's are at most 512 KiB). */
const MAX_CHUNK_SIZE = 0xffff_ffff;

export function encodeManifest(chunks: readonly ChunkMeta[]): Uint8Array {
  const out = Buffer.alloc(MANIFEST_MAGIC.length + chunks.length * MANIFEST_RECORD_LENGTH);
  MANIFEST_MAGIC.copy(out, 0);
  let at = MANIFEST_MAGIC.length;
  for (const chunk of chunks) {
    if (!Number.isInteger(chunk.size) || chunk.size < 1 || chunk.size > MAX_CHUNK_SIZE) {
      throw new RangeError(`chunk ${chunk.digest.hex} has size ${chunk.size}, not 1 to ${MAX_CHUNK_SIZE}`);
    }
    out.set(chunk.digest.bytes, at);
    out.writeUInt32BE(chunk.size, at + DIGEST_LENGTH);
    at += MANIFEST_RECORD_LENGTH;
  }
  return out;
}

/** Decodes the manifest object of `blob`; a damaged one is a CorruptionError naming the blob. */
export function decodeManifest(blob: Digest, data: Uint8Array): ChunkMeta[] {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const bad = (why: string) => new CorruptionError(`manifest object of blob ${blob.hex} is damaged: ${why}`);
  if (bytes.length < MANIFEST_MAGIC.length || !bytes.subarray(0, MANIFEST_MAGIC.length).equals(MANIFEST_MAGIC)) {
    throw bad(`it does not start with ${JSON.stringify(MANIFEST_MAGIC.toString("latin1"))}`);
  }
  const body = bytes.length - MANIFEST_MAGIC.length;
  if (body % MANIFEST_RECORD_LENGTH !== 0) {
    throw bad(`${body} bytes of records is not a whole number of ${MANIFEST_RECORD_LENGTH}-byte records`);
  }
  const chunks: ChunkMeta[] = [];
  for (let at = MANIFEST_MAGIC.length; at < bytes.length; at += MANIFEST_RECORD_LENGTH) {
    const size = bytes.readUInt32BE(at + DIGEST_LENGTH);
    if (size === 0) throw bad(`record ${chunks.length} has size 0`);
    chunks.push({ digest: Digest.fromBytes(bytes.subarray(at, at + DIGEST_LENGTH)), size });
  }
  if (chunks.length === 0) throw bad("it lists no chunk (the empty blob has no manifest)");
  return chunks;
}
