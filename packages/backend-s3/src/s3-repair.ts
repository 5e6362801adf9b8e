/**
 * What S3DirectoryService.repair rewrites. A directory's bytes live in two
 * places: its index object `dirs/<d>` and a frame in every closure object
 * that holds it. The index object keeps its pointer and gets the correct
 * bytes. A closure object is laid out again from its frames that are intact
 * and the repaired directories: the layout is a function of the closure alone
 * (closure-format.ts), so the rebuilt body is what an upload of that closure
 * writes, byte for byte once every frame is correct, and the index objects
 * pointing into it stay right.
 */
import { type ClosureEntry, Digest, decodeStoredDirectory, hexOf } from "@castore-ts/core";
import {
  CLOSURE_MAGIC,
  FRAME_PREFIX_LENGTH,
  type IndexRecord,
  type Placement,
  decodeIndex,
  encodeIndex,
  layoutClosure,
} from "./closure-format.js";

/** The frames of a closure object's body, as stored; undefined when the body is not a closure object. */
function framesOf(body: Uint8Array): Uint8Array[] | undefined {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (buf.length < CLOSURE_MAGIC.length || !buf.subarray(0, CLOSURE_MAGIC.length).equals(CLOSURE_MAGIC))
    return undefined;
  const frames: Uint8Array[] = [];
  for (let at = CLOSURE_MAGIC.length; at < buf.length;) {
    if (at + FRAME_PREFIX_LENGTH > buf.length) return undefined;
    const length = buf.readUInt32BE(at);
    const start = at + FRAME_PREFIX_LENGTH;
    if (start + length > buf.length) return undefined;
    frames.push(buf.subarray(start, start + length));
    at = start + length;
  }
  return frames;
}

/**
 * The closure object of `root` laid out again with `repairs` in place of its
 * damaged frames, and where each directory now sits in it (damaged frames
 * may have had other lengths: index objects pointing into it move with
 * them); undefined when it needs no change, or cannot be rebuilt
 * (a directory of the closure is neither intact in it nor repaired: it is
 * left as it is, and reads of it keep reporting corruption).
 */
export function rebuiltClosure(
  root: Digest,
  body: Uint8Array,
  repairs: Map<string, ClosureEntry>,
): { body: Uint8Array; placements: Map<string, Placement> } | undefined {
  const frames = framesOf(body);
  if (!frames) return undefined;
  const intact = new Map<string, Uint8Array>();
  let damaged = false;
  for (const frame of frames) {
    const hex = Digest.of(frame).hex;
    // A frame that hashes to a repaired digest is intact already; any other may be damaged.
    intact.set(hex, frame);
  }
  // Walk the closure from the root through repaired and intact directories.
  const entries = new Map<string, ClosureEntry>();
  const queue = [root.hex];
  while (queue.length > 0) {
    const hex = queue.pop()!;
    if (entries.has(hex)) continue;
    let entry = repairs.get(hex);
    if (entry) {
      if (!intact.has(hex)) damaged = true;
    } else {
      const bytes = intact.get(hex);
      if (!bytes) return undefined;
      const digest = Digest.parse(hex);
      let directory;
      try {
        directory = decodeStoredDirectory(digest, bytes);
      } catch {
        return undefined; // hashes right but is not valid: nothing here to repair it with
      }
      entry = { digest, bytes, directory };
    }
    entries.set(hex, entry);
    for (const child of entry.directory.directories) queue.push(hexOf(child.digest));
  }
  // Nothing of the repair was damaged here; or the frames are not this closure's (then left alone).
  if (!damaged || entries.size !== frames.length) return undefined;
  const { body: rebuilt, placements } = layoutClosure([...entries.values()], root);
  return { body: rebuilt, placements };
}

/**
 * An index object pointing into the rebuilt closure object of `root`, moved
 * to its directory's new place (and given the correct bytes if repaired);
 * undefined when it points elsewhere, is unreadable, or needs no change.
 */
export function movedIndex(
  digest: Digest,
  stored: Uint8Array,
  root: Digest,
  placement: Placement,
  repaired: ClosureEntry | undefined,
): Uint8Array | undefined {
  let record: IndexRecord;
  try {
    record = decodeIndex(digest, stored);
  } catch {
    return undefined;
  }
  if (!record.closure?.equals(root)) return undefined;
  if (record.placement.offset === placement.offset && record.placement.end === placement.end) return undefined;
  return encodeIndex({ closure: root, placement, bytes: repaired?.bytes ?? record.bytes });
}

/**
 * The index object of a repaired directory: its pointer as stored and the
 * correct bytes. When the header itself is unreadable: a directory without
 * child directories needs no pointer; one with them points at its own
 * closure object if it has one (`ownClosureLength`: it was an upload's root,
 * and is that object's first frame); otherwise undefined (not repairable here).
 */
export function repairedIndex(
  entry: ClosureEntry,
  stored: Uint8Array,
  ownClosureLength: number | undefined,
): Uint8Array | undefined {
  let record: IndexRecord;
  try {
    record = decodeIndex(entry.digest, stored);
  } catch {
    if (entry.directory.directories.length === 0) record = { placement: { offset: 0, end: 0 }, bytes: entry.bytes };
    else if (ownClosureLength !== undefined) {
      record = {
        closure: entry.digest,
        placement: { offset: CLOSURE_MAGIC.length, end: ownClosureLength },
        bytes: entry.bytes,
      };
    } else return undefined;
  }
  return encodeIndex({ ...record, bytes: entry.bytes });
}
