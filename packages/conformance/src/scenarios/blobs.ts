/** Spec §8: blobs (file contents), content-addressed and chunked. */
import { randomFillSync } from "node:crypto";
import { type BlobService, createBlake3Hasher, Digest, EMPTY_BLOB_DIGEST } from "@castore-ts/core";
import { checkErrorClass, expectOk, expectRejects } from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Deterministic bytes that chunk like real data (xorshift32; fast enough for a GiB). */
export function blobBytes(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  for (let i = words.length * 4; i < size; i++) out[i] = (seed + i) & 0xff;
  return out;
}

/** Bytes no other run wrote: for absence checks that must hold on a shared store too. */
function freshBytes(size: number): Uint8Array {
  return randomFillSync(new Uint8Array(size));
}

function blobs(ctx: ScenarioContext): BlobService {
  return ctx.blobs ?? ctx.fail('the instance has no blob service (set instance.blobs, or declare capability "blobs")');
}

/** Writes `bytes` in pieces of the given sizes (cycled), returns the digest close() gave. */
async function writeBlob(ctx: ScenarioContext, what: string, bytes: Uint8Array, pieces = [bytes.length || 1]) {
  const writer = blobs(ctx).openWriter({ signal: ctx.signal });
  return expectOk(ctx, what, async () => {
    for (let at = 0, i = 0; at < bytes.length; i++) {
      const n = pieces[i % pieces.length];
      await writer.write(bytes.subarray(at, at + n));
      at += n;
    }
    const written = await writer.close();
    if (!written.digest.equals(Digest.of(bytes)))
      ctx.fail(`${what}: close() returned ${written.digest.hex}, the bytes' BLAKE3 is ${Digest.of(bytes).hex}`);
    if (written.size !== bytes.length) ctx.fail(`${what}: close() said ${written.size} bytes, wrote ${bytes.length}`);
    return written.digest;
  });
}

/** Reads a blob (or a range) whole; fails the scenario when it is absent or the read fails. */
async function readAll(
  ctx: ScenarioContext,
  what: string,
  digest: Digest,
  range: { offset?: number; length?: number } = {},
): Promise<Uint8Array> {
  return expectOk(ctx, what, async () => {
    const stream = await blobs(ctx).read(digest, { ...range, signal: ctx.signal });
    if (!stream) return ctx.fail(`${what}: read() says ${digest.hex} is absent`);
    const parts: Uint8Array[] = [];
    for await (const part of stream) parts.push(part.slice());
    return Buffer.concat(parts);
  });
}

function expectSameBytes(ctx: ScenarioContext, what: string, got: Uint8Array, want: Uint8Array): void {
  if (got.length !== want.length) ctx.fail(`${what}: got ${got.length} bytes, expected ${want.length}`);
  const at =
    Buffer.from(got.buffer, got.byteOffset, got.length).compare(Buffer.from(want)) === 0 ? -1 : firstDiff(got, want);
  if (at >= 0) ctx.fail(`${what}: bytes differ from byte ${at} on`);
}

function firstDiff(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return Math.min(a.length, b.length);
}

async function expectStatSize(ctx: ScenarioContext, what: string, digest: Digest, size: number) {
  const stat = await expectOk(ctx, `stat(${what})`, () => blobs(ctx).stat(digest, { signal: ctx.signal }));
  if (!stat) ctx.fail(`stat(${what}) says it is absent`);
  if (stat.size !== size) ctx.fail(`stat(${what}).size is ${stat.size}, expected ${size}`);
}

/** The sizes around snix's chunk bounds (128 KiB minimum, 512 KiB maximum) and a few MiB. */
const ROUND_TRIP_SIZES = [0, 1, 128 * KiB - 1, 128 * KiB, 128 * KiB + 1, 512 * KiB - 1, 512 * KiB + 1, 3 * MiB + 17];

export const blobScenarios: Scenario[] = [
  {
    id: "blob.round-trip",
    name: "§8 blobs of 0, 1, chunk bound ±1 bytes and a few MiB round-trip: digest, size, bytes",
    requires: ["blobs", "write"],
    async run(ctx) {
      for (const [i, size] of ROUND_TRIP_SIZES.entries()) {
        const bytes = blobBytes(800 + i, size);
        const digest = await writeBlob(ctx, `write of ${size} bytes`, bytes);
        expectSameBytes(ctx, `read of the ${size}-byte blob`, await readAll(ctx, `read(${size} bytes)`, digest), bytes);
        await expectStatSize(ctx, `${size}-byte blob`, digest, size);
        const [present] = await expectOk(ctx, "has()", () => blobs(ctx).has([digest], { signal: ctx.signal }));
        if (!present) ctx.fail(`has() says the ${size}-byte blob just written is absent`);
      }
    },
  },
  {
    id: "blob.empty",
    name: "§8 the empty blob exists in every store, without being written",
    requires: ["blobs"],
    async run(ctx) {
      const [present] = await expectOk(ctx, "has([empty])", () => blobs(ctx).has([EMPTY_BLOB_DIGEST]));
      if (!present) ctx.fail("has() says the empty blob is absent");
      await expectStatSize(ctx, "the empty blob", EMPTY_BLOB_DIGEST, 0);
      const bytes = await readAll(ctx, "read(empty blob)", EMPTY_BLOB_DIGEST);
      if (bytes.length !== 0) ctx.fail(`read of the empty blob gave ${bytes.length} bytes`);
    },
  },
  {
    id: "blob.piece-sizes",
    name: "§8 the same bytes written in pieces of different sizes give one digest and the same chunks",
    requires: ["blobs", "write"],
    async run(ctx) {
      const bytes = blobBytes(811, 2 * MiB + 5);
      const shapes = [[bytes.length], [1, 7, 4093], [64 * KiB], [MiB - 1, 3]];
      const digests: Digest[] = [];
      for (const pieces of shapes)
        digests.push(await writeBlob(ctx, `write in pieces of ${pieces.join(",")}`, bytes, pieces));
      const chunkLists = await Promise.all(
        digests.map((d) => expectOk(ctx, "stat(chunks)", () => blobs(ctx).stat(d, { chunks: true }))),
      );
      const first = chunkLists[0]?.chunks?.map((c) => `${c.digest.hex}:${c.size}`).join(" ");
      for (const [i, stat] of chunkLists.entries()) {
        const list = stat?.chunks?.map((c) => `${c.digest.hex}:${c.size}`).join(" ");
        if (list !== first) ctx.fail(`pieces ${shapes[i].join(",")} stored other chunks than one piece did`);
      }
      expectSameBytes(ctx, "read back", await readAll(ctx, "read", digests[0]), bytes);
    },
  },
  {
    id: "blob.reused-buffer",
    name: "§8 a writer fed through one reused Buffer (as a file is read) stores the bytes as they were written",
    requires: ["blobs", "write"],
    async run(ctx) {
      const bytes = blobBytes(818, 3 * MiB + 1);
      const buffer = Buffer.allocUnsafe(MiB); // Buffer: its slice() is a view, unlike Uint8Array's
      const writer = blobs(ctx).openWriter({ signal: ctx.signal });
      const written = await expectOk(ctx, "write through a reused Buffer", async () => {
        for (let at = 0; at < bytes.length; at += buffer.length) {
          const n = Math.min(buffer.length, bytes.length - at);
          buffer.set(bytes.subarray(at, at + n));
          await writer.write(buffer.subarray(0, n));
          buffer.fill(0xee); // the caller may reuse its buffer once write() resolved
        }
        return writer.close();
      });
      if (!written.digest.equals(Digest.of(bytes)))
        ctx.fail(`close() returned ${written.digest.hex}, not the bytes' digest`);
      expectSameBytes(ctx, "read back", await readAll(ctx, "read", written.digest), bytes);
    },
  },
  {
    id: "blob.concurrent-writes",
    name: "§8 concurrent writes of the same blob all succeed with one digest",
    requires: ["blobs", "write"],
    async run(ctx) {
      const bytes = blobBytes(812, 2 * MiB + 11);
      const digests = await Promise.all(
        [0, 1, 2, 3].map((i) => writeBlob(ctx, `concurrent write #${i}`, bytes, [100 * KiB + i * 1000])),
      );
      if (!digests.every((d) => d.equals(digests[0]))) ctx.fail("concurrent writes of one blob gave different digests");
      expectSameBytes(ctx, "read back", await readAll(ctx, "read", digests[0]), bytes);
    },
  },
  {
    id: "blob.ranged-read",
    name: "§8 ranged reads at chunk boundaries ±1, empty and past the end give exactly those bytes",
    requires: ["blobs", "write"],
    async run(ctx) {
      const bytes = blobBytes(813, 3 * MiB + 3);
      const digest = await writeBlob(ctx, "write", bytes);
      const stat = await expectOk(ctx, "stat(chunks)", () => blobs(ctx).stat(digest, { chunks: true }));
      const bounds: number[] = [];
      let at = 0;
      for (const c of stat?.chunks ?? []) bounds.push((at += c.size));
      const ranges: [number, number][] = [
        [0, 1],
        [1, 100],
        [bytes.length - 1, 1],
        [bytes.length - 10, 100], // runs past the end: what is there
        [bytes.length, 10], // at the end: nothing
        [bytes.length + 5, 10], // past the end: nothing
        [MiB, 0],
        [17, MiB + 3],
      ];
      for (const b of bounds.slice(0, 4)) ranges.push([b - 1, 2], [b, 1], [b - 1, 1], [b + 1, 300 * KiB]);
      for (const [offset, length] of ranges) {
        const got = await readAll(ctx, `read(offset ${offset}, length ${length})`, digest, { offset, length });
        expectSameBytes(ctx, `read(offset ${offset}, length ${length})`, got, bytes.subarray(offset, offset + length));
      }
      const tail = await readAll(ctx, "read(offset only)", digest, { offset: 2 * MiB });
      expectSameBytes(ctx, "read(offset 2 MiB)", tail, bytes.subarray(2 * MiB));
    },
  },
  {
    id: "blob.absent",
    name: "§8 an absent blob: has() false, stat() and read() undefined; has() answers per digest in order",
    requires: ["blobs", "write"],
    async run(ctx) {
      const absent = Digest.of(freshBytes(64));
      const present = await writeBlob(ctx, "write", blobBytes(814, 1000));
      const answer = await expectOk(ctx, "has([absent, present, empty, absent])", () =>
        blobs(ctx).has([absent, present, EMPTY_BLOB_DIGEST, absent]),
      );
      if (answer.join() !== "false,true,true,false")
        ctx.fail(`has([absent, present, empty, absent]) = [${answer.join(", ")}], expected [false, true, true, false]`);
      const stat = await expectOk(ctx, "stat(absent)", () => blobs(ctx).stat(absent));
      if (stat !== undefined) ctx.fail(`stat() of an absent blob gave size ${stat.size}`);
      const read = await expectOk(ctx, "read(absent)", () => blobs(ctx).read(absent));
      if (read !== undefined) ctx.fail("read() of an absent blob gave a stream");
    },
  },
  {
    id: "blob.wrong-types",
    name: "§8 a caller's argument of the wrong type (a hex string or raw bytes for a digest, a string to write) → InvalidDigest or ValidationError; a refused write stores nothing",
    requires: ["blobs", "write"],
    async run(ctx) {
      const digest = Digest.of(blobBytes(815, 100));
      const hex = digest.hex as unknown as Digest;
      const raw = digest.bytes as unknown as Digest;
      await expectRejects(ctx, "stat(a hex string)", () => blobs(ctx).stat(hex), ["INVALID_DIGEST"]);
      await expectRejects(ctx, "read(raw digest bytes)", () => blobs(ctx).read(raw), ["INVALID_DIGEST"]);
      await expectRejects(ctx, "has(a Digest, not an array)", () => blobs(ctx).has(digest as unknown as Digest[]), [
        "INVALID_DIGEST",
      ]);
      await expectRejects(ctx, "has([a hex string])", () => blobs(ctx).has([hex]), ["INVALID_DIGEST"]);
      await expectRejects(
        ctx,
        "openWriter({ expectDigest: a hex string })",
        async () => blobs(ctx).openWriter({ expectDigest: hex }),
        ["INVALID_DIGEST"],
      );
      // A string is not bytes: BLAKE3 of its UTF-8 would be one blob, the chunker's view of it another.
      const text = "not bytes";
      const writer = blobs(ctx).openWriter();
      await expectRejects(ctx, "write(a string)", () => writer.write(text as unknown as Uint8Array), ["VALIDATION"]);
      await writer.abort(new Error("conformance: refused write")).catch(() => {});
      const utf8 = Digest.of(new TextEncoder().encode(text));
      const [present] = await expectOk(ctx, "has()", () => blobs(ctx).has([utf8]));
      if (present) ctx.fail(`after write(a string) was refused, the string's UTF-8 is stored as blob ${utf8.hex}`);
    },
  },
  {
    id: "blob.abort",
    name: "§8 an aborted write stores no blob; the writer refuses writes after abort()",
    requires: ["blobs", "write"],
    async run(ctx) {
      const bytes = freshBytes(2 * MiB + 1);
      const digest = Digest.of(bytes);
      const writer = blobs(ctx).openWriter();
      await expectOk(ctx, "write()", () => writer.write(bytes.subarray(0, MiB)));
      await expectOk(ctx, "write()", () => writer.write(bytes.subarray(MiB)));
      await expectOk(ctx, "abort()", () => writer.abort(new Error("conformance: write abandoned")));
      const after = await writer.write(bytes.subarray(0, 10)).then(
        () => "resolved",
        (e: unknown) => e,
      );
      if (after === "resolved") ctx.fail("write() after abort() resolved");
      checkErrorClass(ctx, "write() after abort()", after, []);
      const closed = await writer.close().then(
        (w) => w,
        () => undefined,
      );
      if (closed) ctx.fail(`close() after abort() stored the blob as ${closed.digest.hex}`);
      const [present] = await expectOk(ctx, "has()", () => blobs(ctx).has([digest]));
      if (present) ctx.fail("the aborted blob is visible (has() is true)");
      if (await blobs(ctx).stat(digest)) ctx.fail("the aborted blob is visible (stat() found it)");
    },
  },
  {
    id: "blob.expect-digest",
    name: "§8.1 a writer opened with expectDigest stores bytes that hash to it; other bytes fail close() with a ValidationError and become visible under neither digest",
    requires: ["blobs", "write"],
    async run(ctx) {
      // One chunk (stored at close), and several (the first ones stored while writing).
      for (const size of [100, 2 * MiB + 3]) {
        const bytes = freshBytes(size);
        const digest = Digest.of(bytes);
        const right = blobs(ctx).openWriter({ expectDigest: digest, signal: ctx.signal });
        const written = await expectOk(
          ctx,
          `write and close() of ${size} bytes that hash to expectDigest`,
          async () => {
            await right.write(bytes);
            return right.close();
          },
        );
        if (!written.digest.equals(digest))
          ctx.fail(`close() answered ${written.digest.hex} for bytes hashing to ${digest.hex}`);

        const other = freshBytes(size);
        const otherDigest = Digest.of(other);
        // A digest no one writes: what the caller believed it was storing.
        const believed = Digest.of(freshBytes(size));
        const wrong = blobs(ctx).openWriter({ expectDigest: believed, signal: ctx.signal });
        await expectOk(ctx, `write() of ${size} other bytes`, () => wrong.write(other));
        await expectRejects(ctx, `close() of ${size} bytes that do not hash to expectDigest`, () => wrong.close(), [
          "VALIDATION",
        ]);
        await wrong.abort(new Error("conformance: refused write")).catch(() => {});
        const present = await expectOk(ctx, "has()", () => blobs(ctx).has([otherDigest, believed]));
        if (present[0]) ctx.fail(`the refused ${size}-byte blob is visible under its own digest ${otherDigest.hex}`);
        if (present[1]) ctx.fail(`the refused ${size}-byte blob is visible under expectDigest ${believed.hex}`);
      }
    },
  },
  {
    id: "blob.chunk-by-digest",
    name: "§8 each chunk of a blob is readable by its own digest",
    requires: ["blobs", "write"],
    async run(ctx) {
      const bytes = blobBytes(815, 2 * MiB + 7);
      const digest = await writeBlob(ctx, "write", bytes);
      const stat = await expectOk(ctx, "stat(chunks)", () => blobs(ctx).stat(digest, { chunks: true }));
      const chunks = stat?.chunks;
      if (!chunks || chunks.length < 2)
        return ctx.skip(`the store lists ${chunks?.length ?? "no"} chunks for a 2 MiB blob`);
      let at = 0;
      for (const [i, c] of chunks.entries()) {
        const got = await readAll(ctx, `read(chunk #${i})`, c.digest);
        expectSameBytes(ctx, `chunk #${i} read by its digest`, got, bytes.subarray(at, at + c.size));
        at += c.size;
      }
      if (at !== bytes.length) ctx.fail(`the chunks' sizes add up to ${at}, the blob has ${bytes.length} bytes`);
    },
  },
  {
    id: "blob.corruption",
    name: "§8 a damaged chunk is reported as CorruptionError on read, and no damaged byte is returned",
    requires: ["blobs", "write", "blobCorruption", "isolated"],
    async run(ctx) {
      const bytes = blobBytes(816, 3 * MiB);
      const digest = await writeBlob(ctx, "write", bytes);
      const stat = await expectOk(ctx, "stat(chunks)", () => blobs(ctx).stat(digest, { chunks: true }));
      const chunks = stat?.chunks ?? [];
      if (chunks.length < 3) return ctx.fail(`expected a 3 MiB blob in at least 3 chunks, got ${chunks.length}`);
      const corruptChunk = ctx.instance.corruptChunk;
      if (!corruptChunk) return ctx.fail("instance.corruptChunk is missing (or declare capability blobCorruption)");
      const victim = 1;
      const start = chunks[0].size;
      const damaged = bytes.slice(start, start + chunks[victim].size);
      damaged[damaged.length >> 1] ^= 0x40;
      await expectOk(ctx, "corruptChunk()", () => corruptChunk.call(ctx.instance, chunks[victim].digest, damaged));

      for (const [what, range] of [
        ["a full read", {}],
        ["a read of the damaged chunk's range", { offset: start + 10, length: 100 }],
      ] as const) {
        const received: Uint8Array[] = [];
        const error = await (async () => {
          const stream = await blobs(ctx).read(digest, range);
          if (!stream) return ctx.fail(`${what}: read() says the blob is absent`);
          for await (const part of stream) received.push(part.slice());
        })().then(
          () => undefined,
          (e: unknown) => e ?? new Error("rejected with nothing"),
        );
        if (!error) ctx.fail(`${what} of a blob with a damaged chunk ended cleanly`);
        checkErrorClass(ctx, `${what} of a damaged blob`, error, ["CORRUPTION"]);
        const got = Buffer.concat(received);
        const from = "offset" in range ? range.offset : 0;
        if (got.length > 0 && from + got.length > start && from < start + damaged.length)
          ctx.fail(`${what} returned ${got.length} bytes, reaching into the damaged chunk`);
        expectSameBytes(ctx, `${what}: the bytes before the damage`, got, bytes.subarray(from, from + got.length));
      }
      // the intact chunks still read
      const first = await readAll(ctx, "read of the first chunk's range", digest, { offset: 0, length: start });
      expectSameBytes(ctx, "the first chunk", first, bytes.subarray(0, start));
    },
  },
  {
    id: "blob.large",
    name: "§8 a 1 GiB blob goes in and out as a stream, with one digest",
    requires: ["blobs", "write", "largeBlobs"],
    timeoutMs: 600_000,
    async run(ctx) {
      const size = 1024 * MiB;
      const piece = blobBytes(817, 4 * MiB);
      const hasher = createBlake3Hasher();
      const writer = blobs(ctx).openWriter({ signal: ctx.signal });
      const written = await expectOk(ctx, "write 1 GiB", async () => {
        for (let at = 0, i = 0; at < size; at += piece.length, i++) {
          piece[0] = i & 0xff; // each 4 MiB piece differs a little
          piece[1] = i >> 8;
          hasher.update(piece);
          await writer.write(piece);
        }
        return writer.close();
      });
      const expected = Digest.fromBytes(hasher.digest());
      if (!written.digest.equals(expected))
        ctx.fail(`close() returned ${written.digest.hex}, expected ${expected.hex}`);
      await expectStatSize(ctx, "the 1 GiB blob", expected, size);
      const check = createBlake3Hasher();
      let total = 0;
      await expectOk(ctx, "read 1 GiB", async () => {
        const stream = await blobs(ctx).read(expected, { signal: ctx.signal });
        if (!stream) return ctx.fail("read() says the 1 GiB blob is absent");
        for await (const part of stream) {
          check.update(part);
          total += part.length;
        }
      });
      if (total !== size) ctx.fail(`read gave ${total} bytes, expected ${size}`);
      if (!Digest.fromBytes(check.digest()).equals(expected)) ctx.fail("the bytes read back hash to another digest");
    },
  },
];
