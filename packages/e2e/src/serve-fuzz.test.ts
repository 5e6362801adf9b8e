/**
 * Hostile input against a spawned `castore serve` (the built CLI) over an
 * lmdb:// store, with fast-check (seeded, bounded): random bytes, truncated
 * and mistyped protobuf, unsorted/duplicate/invalid names, wrong digest
 * lengths and sizes, deep and wide directories at and past the limits,
 * uploads cancelled or stalled half-way, many tiny uploads, and malformed gRPC
 * framing through raw HTTP/2. For every case: the server answers with a
 * status before a per-call deadline, a concurrent well-behaved Get of a known
 * root keeps working, the server process survives with bounded memory, and
 * finally `castore verify` over the whole store finds no problem.
 *
 * CASTORE_FUZZ_RUNS sets the total number of cases (default 10 000, split over
 * the properties; see the README for runtimes); CASTORE_FUZZ_SEED the seed.
 */
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as os from "node:os";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Digest,
  directoryDigest,
  encodeDirectory,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  type Directory,
} from "@castore-ts/core";
import { GrpcDirectoryService } from "@castore-ts/backend-grpc";
import { type CastoreServeProcess, encodeGetRequest, runCastore, startCastoreServe } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

const TOTAL_RUNS = Number(process.env.CASTORE_FUZZ_RUNS ?? 10_000);
const SEED = Number(process.env.CASTORE_FUZZ_SEED ?? 20261125);
const CALL_DEADLINE_MS = 10_000;
const LIMITS = { messageBytes: 64 * 1024, entries: 64, uploadDirectories: 100, idleMs: 1000 };
const OK_CODES = new Set([
  status.OK,
  status.INVALID_ARGUMENT,
  status.RESOURCE_EXHAUSTED,
  status.INTERNAL,
  status.UNIMPLEMENTED,
  status.NOT_FOUND,
]);

const identity = (b: Buffer) => b;

let tmp: string;
let storeUrl: string;
let server: CastoreServeProcess;
let url: string;
let client: grpc.Client;
let good: GrpcDirectoryService;
let knownRoot: Digest;
let knownCount: number;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : 0;
}

interface Outcome {
  code: number;
  details: string;
}

function deadline() {
  return { deadline: Date.now() + CALL_DEADLINE_MS };
}

function put(messages: Uint8Array[], how: "end" | "cancel" = "end"): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest(
      "/tvix.castore.v1.DirectoryService/Put",
      identity,
      identity,
      new grpc.Metadata(),
      deadline(),
      (error: grpc.ServiceError | null) =>
        resolve(error ? { code: error.code, details: error.details } : { code: status.OK, details: "" }),
    );
    for (const m of messages) call.write(Buffer.from(m));
    if (how === "end") call.end();
    else setTimeout(() => call.cancel(), 5);
  });
}

function get(request: Uint8Array): Promise<Outcome & { messages: number }> {
  return new Promise((resolve) => {
    let messages = 0;
    const call = client.makeServerStreamRequest(
      "/tvix.castore.v1.DirectoryService/Get",
      identity,
      identity,
      Buffer.from(request),
      new grpc.Metadata(),
      deadline(),
    );
    call.on("data", () => messages++);
    call.on("error", () => {});
    call.on("status", (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details, messages }));
  });
}

/** The well-behaved client: a recursive Get of the known tree. */
async function wellBehaved(): Promise<void> {
  let n = 0;
  for await (const _ of good.getRecursive(knownRoot)) n++;
  expect(n).toBe(knownCount);
}

/** Protobuf by hand, so nothing tidies it: (field, wire type, payload). */
function varint(n: bigint | number): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
function lenField(field: number, bytes: Uint8Array | number[]): number[] {
  return [...varint((field << 3) | 2), ...varint(bytes.length), ...bytes];
}
function varintField(field: number, n: bigint | number): number[] {
  return [...varint(field << 3), ...varint(n)];
}
interface RawNode {
  kind: 1 | 2 | 3;
  name: Uint8Array;
  digest: Uint8Array;
  size: bigint;
  executable: boolean;
  target: Uint8Array;
}
function encodeRaw(nodes: RawNode[]): Uint8Array {
  const out: number[] = [];
  for (const n of nodes) {
    const body =
      n.kind === 3
        ? [...lenField(1, n.name), ...lenField(2, n.target)]
        : [
            ...lenField(1, n.name),
            ...lenField(2, n.digest),
            ...varintField(3, n.size),
            ...(n.kind === 2 && n.executable ? varintField(4, 1) : []),
          ];
    out.push(...lenField(n.kind, body));
  }
  return Uint8Array.from(out);
}

const nameArb = fc.oneof(
  fc.constantFrom("a", "b", "a", ".", "..", "", "x/y", "n\0", "z".repeat(256)).map((s) => Buffer.from(s)),
  fc.uint8Array({ minLength: 0, maxLength: 12 }),
);
const nodeArb: fc.Arbitrary<RawNode> = fc.record({
  kind: fc.constantFrom(1 as const, 2 as const, 3 as const),
  name: nameArb,
  digest: fc.oneof(
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.constant(fixtures.EMPTY_BLOB_DIGEST.bytes),
  ),
  size: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
  executable: fc.boolean(),
  target: fc.oneof(fc.uint8Array({ maxLength: 8 }), fc.constant(Buffer.from("t"))),
});
/** A protobuf-shaped message with random fields and wire types (wrong types, nesting, truncation). */
const wireArb: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.record({
      field: fc.integer({ min: 1, max: 6 }),
      wire: fc.constantFrom(0, 1, 2, 3, 5, 7),
      payload: fc.uint8Array({ maxLength: 40 }),
      declared: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 2 ** 31 })),
    }),
    { maxLength: 6 },
  )
  .map((fields) => {
    const out: number[] = [];
    for (const f of fields) {
      out.push(...varint((f.field << 3) | f.wire));
      if (f.wire === 2) out.push(...varint(f.declared >= 0 ? f.declared : f.payload.length));
      out.push(...f.payload);
    }
    return Uint8Array.from(out);
  });

function chain(depth: number, salt: number, tag: string): Directory[] {
  // leaves to root: each directory holds the previous one
  let child = makeDirectory({ files: [makeFileNode(`leaf-${tag}-${salt}`, fixtures.EMPTY_BLOB_DIGEST, 0n, false)] });
  const out = [child];
  for (let i = 1; i < depth; i++) {
    const size = sizeOf(child);
    child = makeDirectory({ directories: [makeDirectoryNode("d", directoryDigest(child).bytes, size)] });
    out.push(child);
  }
  return out;
}
function sizeOf(d: Directory): bigint {
  let n = BigInt(d.files.length + d.symlinks.length);
  for (const c of d.directories) n += 1n + c.size;
  return n;
}
function wide(entries: number, salt: number): Directory {
  const files = [];
  for (let i = 0; i < entries; i++)
    files.push(makeFileNode(`f${salt}-${String(i).padStart(5, "0")}`, fixtures.EMPTY_BLOB_DIGEST, 0n, false));
  return makeDirectory({ files });
}

type Case =
  | { kind: "put-bytes"; messages: Uint8Array[] }
  | { kind: "get-bytes"; request: Uint8Array }
  | { kind: "put-nodes"; directories: RawNode[][]; cancel: boolean }
  | { kind: "put-wire"; messages: Uint8Array[] }
  | { kind: "deep"; depth: number; salt: number }
  | { kind: "wide"; entries: number; salt: number }
  | { kind: "truncated"; cut: number; salt: number };

const caseArb: fc.Arbitrary<Case> = fc.oneof(
  fc.record({
    kind: fc.constant("put-bytes" as const),
    messages: fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }),
  }),
  fc.record({ kind: fc.constant("get-bytes" as const), request: fc.oneof(fc.uint8Array({ maxLength: 80 }), wireArb) }),
  fc.record({
    kind: fc.constant("put-nodes" as const),
    directories: fc.array(fc.array(nodeArb, { maxLength: 6 }), { minLength: 1, maxLength: 3 }),
    cancel: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("put-wire" as const), messages: fc.array(wireArb, { minLength: 1, maxLength: 3 }) }),
  fc.record({
    kind: fc.constant("deep" as const),
    depth: fc.integer({ min: LIMITS.uploadDirectories - 3, max: LIMITS.uploadDirectories + 3 }),
    salt: fc.nat(),
  }),
  fc.record({
    kind: fc.constant("wide" as const),
    entries: fc.integer({ min: LIMITS.entries - 2, max: LIMITS.entries + 2 }),
    salt: fc.nat(),
  }),
  fc.record({ kind: fc.constant("truncated" as const), cut: fc.nat(), salt: fc.nat() }),
);

/** Runs a case; returns what must not be stored afterwards (cancelled or refused uploads). */
async function runCase(c: Case): Promise<{ outcome: Outcome; absent?: Digest; present?: Digest }> {
  switch (c.kind) {
    case "put-bytes":
      return { outcome: await put(c.messages) };
    case "get-bytes":
      return { outcome: await get(c.request) };
    case "put-wire":
      return { outcome: await put(c.messages) };
    case "put-nodes": {
      const messages = c.directories.map(encodeRaw);
      const outcome = await put(messages, c.cancel ? "cancel" : "end");
      // A cancelled upload stores nothing: its last message's directory may not appear unless it was stored before.
      return { outcome };
    }
    case "deep": {
      const dirs = chain(c.depth, c.salt, "deep");
      const root = directoryDigest(dirs[dirs.length - 1]);
      const outcome = await put(dirs.map(encodeDirectory));
      if (c.depth > LIMITS.uploadDirectories) {
        expect(outcome.code).toBe(status.RESOURCE_EXHAUSTED);
        return { outcome, absent: root };
      }
      expect(outcome.code, outcome.details).toBe(status.OK);
      return { outcome, present: root };
    }
    case "wide": {
      const d = wide(c.entries, c.salt);
      const outcome = await put([encodeDirectory(d)]);
      if (c.entries > LIMITS.entries) {
        expect(outcome.code).toBe(status.RESOURCE_EXHAUSTED);
        expect(outcome.details).toMatch(/entries, more than the limit/);
        return { outcome, absent: directoryDigest(d) };
      }
      expect(outcome.code, outcome.details).toBe(status.OK);
      return { outcome, present: directoryDigest(d) };
    }
    case "truncated": {
      // a valid upload whose last (root) message is cut short: the closure never completes
      const dirs = chain(3 + (c.salt % 5), c.salt, "truncated");
      const messages = dirs.map(encodeDirectory);
      const last = messages[messages.length - 1];
      messages[messages.length - 1] = last.subarray(0, c.cut % last.length);
      const outcome = await put(messages);
      return { outcome, absent: directoryDigest(dirs[dirs.length - 1]) };
    }
  }
}

async function isStored(d: Digest): Promise<boolean> {
  const r = await get(encodeGetRequest(d.bytes, false));
  expect([status.OK, status.NOT_FOUND]).toContain(r.code);
  return r.code === status.OK;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "castore-fuzz-"));
  storeUrl = `lmdb://${path.join(tmp, "store")}`;
  server = await startCastoreServe(CASTORE_BIN, [
    "--listen",
    "127.0.0.1:0",
    "--store",
    storeUrl,
    "--max-message-bytes",
    String(LIMITS.messageBytes),
    "--max-directory-entries",
    String(LIMITS.entries),
    "--max-upload-directories",
    String(LIMITS.uploadDirectories),
    "--idle-timeout-ms",
    String(LIMITS.idleMs),
  ]);
  url = server.url;
  client = new grpc.Client(new URL(url).host, grpc.credentials.createInsecure());
  good = GrpcDirectoryService.fromUrl(url);
  const known = chain(20, 424242, "known");
  const putter = good.putMultipleStart();
  for (const d of known) await putter.put(d);
  knownRoot = await putter.close();
  knownCount = known.length;
}, 60_000);

afterAll(async () => {
  client?.close();
  await good?.close();
  await server?.stop("SIGKILL");
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function checkOutcome(o: Outcome, c: { kind: string; cancel?: boolean }) {
  if (c.kind === "put-nodes" && c.cancel) {
    expect([...OK_CODES, status.CANCELLED]).toContain(o.code);
  } else {
    expect(OK_CODES.has(o.code), `${status[o.code]} ${o.details}`).toBe(true);
  }
}

describe("hostile input fuzz against castore serve (lmdb)", () => {
  let rssBefore = 0;

  it("answers every hostile gRPC call with a status and keeps serving", async () => {
    rssBefore = rssKiB(server.child.pid!);
    const runs = Math.max(10, Math.round(TOTAL_RUNS * 0.8));
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        const [r] = await Promise.all([runCase(c), wellBehaved()]);
        checkOutcome(r.outcome, c);
        if (r.absent) expect(await isStored(r.absent)).toBe(false);
        if (r.present) expect(await isStored(r.present)).toBe(true);
      }),
      { numRuns: runs, seed: SEED, endOnFailure: true },
    );
    expect(server.child.exitCode).toBeNull();
  }, 600_000);

  it("malformed gRPC framing through raw HTTP/2 gets a status", async () => {
    // node's HTTP/2 server ends a session that sends too many invalid frames
    // or streams it has to reset (its flood protection): open another then.
    const connect = () => {
      const s = http2.connect(`http://${new URL(url).host}`);
      s.on("error", () => {});
      return s;
    };
    let session = connect();
    let sessions = 1;
    const frame = fc.oneof(
      // declared length longer than what is sent, then end of stream
      fc.record({
        flags: fc.constant(0),
        declared: fc.integer({ min: 1, max: 1000 }),
        body: fc.uint8Array({ maxLength: 20 }),
      }),
      // compressed flag without grpc-encoding; unknown flags
      fc.record({
        flags: fc.constantFrom(1, 2, 0x80, 0xff),
        declared: fc.constant(-1),
        body: fc.uint8Array({ maxLength: 40 }),
      }),
      // huge declared lengths
      fc.record({
        flags: fc.constant(0),
        declared: fc.constantFrom(LIMITS.messageBytes + 1, 2 ** 31, 2 ** 32 - 1),
        body: fc.uint8Array({ maxLength: 10 }),
      }),
      // fewer than 5 bytes of prefix
      fc.record({
        flags: fc.constant(0),
        declared: fc.constant(-2),
        body: fc.uint8Array({ minLength: 1, maxLength: 4 }),
      }),
    );
    const runs = Math.max(5, Math.round(TOTAL_RUNS * 0.15));
    try {
      await fc.assert(
        fc.asyncProperty(frame, fc.constantFrom("Get", "Put"), async (f, method) => {
          let bytes: Buffer;
          if (f.declared === -2) bytes = Buffer.from(f.body);
          else {
            bytes = Buffer.alloc(5 + f.body.length);
            bytes[0] = f.flags;
            bytes.writeUInt32BE(f.declared >= 0 ? f.declared : f.body.length, 1);
            bytes.set(f.body, 5);
          }
          if (session.closed || session.destroyed) {
            session.destroy();
            session = connect();
            sessions++;
          }
          const stream = session.request({
            ":method": "POST",
            ":path": `/tvix.castore.v1.DirectoryService/${method}`,
            "content-type": "application/grpc",
            te: "trailers",
          });
          stream.on("error", () => {});
          stream.resume();
          const code = await new Promise<string | undefined>((resolve) => {
            const timer = setTimeout(() => resolve("no answer"), CALL_DEADLINE_MS);
            stream.once(
              "response",
              (h) => h["grpc-status"] !== undefined && (clearTimeout(timer), resolve(String(h["grpc-status"]))),
            );
            stream.once("trailers", (t) => (clearTimeout(timer), resolve(String(t["grpc-status"]))));
            stream.once("close", () => (clearTimeout(timer), resolve(undefined)));
            stream.end(bytes);
          });
          if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
          expect(code).toBeDefined();
          expect(code).not.toBe("no answer");
          expect(code).not.toBe(String(status.OK));
          await wellBehaved();
        }),
        { numRuns: runs, seed: SEED, endOnFailure: true },
      );
    } finally {
      session.destroy();
    }
    console.log(`raw HTTP/2 framing: ${runs} cases over ${sessions} connection(s)`);
  }, 300_000);

  it("uploads that stall half-way are ended by the idle timeout, storing nothing", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 2, max: 12 }), fc.nat(), fc.nat()), { minLength: 4, maxLength: 8 }),
        async (uploads) => {
          const results = await Promise.all([
            ...uploads.map(async ([depth, salt, at]) => {
              const dirs = chain(depth, salt, "stall");
              const sent = dirs.slice(0, 1 + (at % dirs.length)).map(encodeDirectory);
              // written, never ended: the client just stops
              const done = new Promise<Outcome>((resolve) => {
                const call = client.makeClientStreamRequest(
                  "/tvix.castore.v1.DirectoryService/Put",
                  identity,
                  identity,
                  new grpc.Metadata(),
                  deadline(),
                  (error: grpc.ServiceError | null) =>
                    resolve(error ? { code: error.code, details: error.details } : { code: status.OK, details: "" }),
                );
                for (const m of sent) call.write(Buffer.from(m));
              });
              return {
                outcome: await done,
                root: directoryDigest(dirs[dirs.length - 1]),
                last: directoryDigest(dirs[sent.length - 1]),
              };
            }),
            wellBehaved(),
          ]);
          for (const r of results.slice(0, uploads.length) as { outcome: Outcome; root: Digest; last: Digest }[]) {
            expect(r.outcome.code, r.outcome.details).toBe(status.DEADLINE_EXCEEDED);
            // "idle": ended by the server's timer, not by the client's deadline (grpc-js says "Deadline exceeded")
            expect(r.outcome.details).toMatch(/idle/);
            expect(await isStored(r.root)).toBe(false);
            expect(await isStored(r.last)).toBe(false);
          }
        },
      ),
      { numRuns: 3, seed: SEED, endOnFailure: true },
    );
  }, 120_000);

  it("thousands of tiny uploads, many at once", async () => {
    const n = Math.max(50, Math.round(TOTAL_RUNS * 0.05) * 10);
    const concurrency = 32;
    let next = 0;
    const roots: Digest[] = [];
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < n) {
          const i = next++;
          const d = makeDirectory({
            symlinks: [],
            files: [makeFileNode(`tiny-${i}`, fixtures.EMPTY_BLOB_DIGEST, 0n, false)],
          });
          const o = await put([encodeDirectory(d)]);
          expect(o.code, o.details).toBe(status.OK);
          if (i % 100 === 0) roots.push(directoryDigest(d));
        }
      }),
    );
    for (const r of roots) expect(await isStored(r)).toBe(true);
    await wellBehaved();
  }, 300_000);

  it("memory stays bounded, the server stops cleanly, and castore verify finds no problem", async () => {
    const rssAfter = rssKiB(server.child.pid!);
    // generous: GC slack and lmdb's memory-mapped pages (the store, tens of
    // MB after 10 000 cases) count in RSS; a leak of what the fuzz sent or a
    // runaway buffer would go far past it (measured: +126 MiB at 10 000 cases)
    expect(rssAfter - rssBefore, `RSS ${rssBefore} → ${rssAfter} KiB`).toBeLessThan(512 * 1024);
    client.close();
    await good.close();
    expect(await server.stop("SIGTERM")).toBe(0);
    const v = await runCastore(CASTORE_BIN, ["verify", storeUrl], { timeoutMs: 120_000 });
    console.log(`server RSS ${rssBefore} → ${rssAfter} KiB; ${v.stderr.trim().split("\n").pop()}`);
    expect(v.stderr).toMatch(/ 0 problems/);
    expect(v.code, v.stdout.toString() + v.stderr).toBe(0);
  }, 180_000);
});
