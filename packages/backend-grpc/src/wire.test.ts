/**
 * Bad input on the wire, sent as raw bytes through a grpc-js client with
 * pass-through serializers, so nothing on the client side can tidy it up.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import type * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "@castore-ts/testing";
import { directoryDigest, encodeDirectory, fixtures, makeDirectory, makeFileNode } from "@castore-ts/core";
import { encodeGetRequest, grpcJsAddress, rawClient, rawGet, rawPut } from "./grpc-js.test-helper.js";
import { type Harness, startHarness } from "./memory-store.test-helper.js";
import { create, toBinary } from "@bufbuild/protobuf";
import { GetDirectoryRequestSchema } from "@castore-ts/proto";
import { getRequestBytes } from "./grpc-directory-service.js";

const { DIRECTORY_A, DIRECTORY_B, DIRECTORY_D, DIRECTORY_WITH_KEEP, EMPTY_BLOB_DIGEST } = fixtures;
const enc = encodeDirectory;

describe("bad input on the wire", () => {
  let h: Harness;
  let raw: grpc.Client;
  beforeAll(async () => {
    h = await startHarness("tcp", {
      maxMessageBytes: 64 * 1024,
      maxDirectoriesPerUpload: 5,
      maxUploadBytes: 200 * 1024,
    });
    raw = rawClient(grpcJsAddress(h.server.url!));
  });
  afterAll(async () => {
    raw.close();
    await h.close();
  });
  afterEach(async () => {
    // every call is over once its status was received: none leaks on the server
    await waitFor(() => h.server.activeCalls === 0, "every call's handler has finished");
    h.store.map.clear();
    h.store.putClosureCalls = 0;
  });

  it("Get without by_what is INVALID_ARGUMENT", async () => {
    for (const recursive of [false, true]) {
      const { error } = await rawGet(raw, encodeGetRequest(undefined, recursive));
      expect(error?.code).toBe(status.INVALID_ARGUMENT);
      expect(error?.details).toMatch(/by_what/);
    }
  });

  it("Get with a digest of the wrong length is INVALID_ARGUMENT", async () => {
    for (const len of [0, 31, 33, 64]) {
      const { error } = await rawGet(raw, encodeGetRequest(new Uint8Array(len).fill(7), true));
      expect(error?.code, `digest of ${len} bytes`).toBe(status.INVALID_ARGUMENT);
    }
  });

  it("Get with an undecodable request is an error, not a crash", async () => {
    const { error } = await rawGet(raw, Uint8Array.from([0x0a, 0x20, 1, 2]));
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
  });

  it("Put of bytes that are not a protobuf message is INVALID_ARGUMENT", async () => {
    const { error } = await rawPut(raw, [Uint8Array.from([0xff, 0xff, 0xff, 0xff])]);
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toMatch(/not a valid Directory/);
    expect(h.store.map.size).toBe(0);
  });

  it("Put of a valid message that is not a valid Directory (unsorted names) is INVALID_ARGUMENT naming the rule", async () => {
    const bad = makeDirectory({
      files: [makeFileNode("b", EMPTY_BLOB_DIGEST, 0), makeFileNode("a", EMPTY_BLOB_DIGEST, 0)],
    });
    const { error } = await rawPut(raw, [enc(bad)]);
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toMatch(/not sorted/);
    expect(error?.metadata.get("castore-error-code")).toEqual(["VALIDATION"]);
  });

  it("Put of a Directory with an unknown field is INVALID_ARGUMENT (not canonical)", async () => {
    // field 9, varint 1, appended to A (the empty directory)
    const { error } = await rawPut(raw, [Uint8Array.from([0x48, 0x01])]);
    expect(error?.code).toBe(status.INVALID_ARGUMENT);
    expect(error?.details).toMatch(/unknown field 9/);
    // an unknown field inside a node
    const keep = enc(DIRECTORY_WITH_KEEP);
    // WITH_KEEP = field 2 (FileNode) of length L; re-frame with an extra field 7 inside the node
    const inner = keep.subarray(2);
    const node = Uint8Array.from([...inner, 0x38, 0x01]);
    const { error: nodeError } = await rawPut(raw, [Uint8Array.from([0x12, node.length, ...node])]);
    expect(nodeError?.code).toBe(status.INVALID_ARGUMENT);
    expect(nodeError?.details).toMatch(/files\[0\] has unknown field 7/);
    expect(h.store.map.size).toBe(0);
  });

  it("Put of a file size varint above 2^64-1 is INVALID_ARGUMENT, not read as a truncated size", async () => {
    // A file node whose size is a 10-byte varint: 2^64 (ff×9 02) and 2^65 (80×9 04), which a
    // lenient decoder reads as 2^63-1 and 0. prost rejects both.
    for (const size of [
      [...Array(9).fill(0xff), 0x02],
      [...Array(9).fill(0x80), 0x04],
    ]) {
      const node = [0x0a, 0x01, 0x66, 0x12, 32, ...EMPTY_BLOB_DIGEST.bytes, 0x18, ...size];
      const { error } = await rawPut(raw, [Uint8Array.from([0x12, node.length, ...node])]);
      expect(error?.code).toBe(status.INVALID_ARGUMENT);
      expect(error?.details).toMatch(/varint overflows 64 bits/);
    }
    expect(h.store.map.size).toBe(0);
  });

  it("a non-canonical but equivalent encoding is canonicalized (same digest as the canonical one)", async () => {
    // WITH_KEEP's file node with its fields written in reverse order (size 0 omitted either way)
    const canonical = enc(DIRECTORY_WITH_KEEP);
    const name = Buffer.from(".keep");
    const node = Uint8Array.from([0x12, 32, ...EMPTY_BLOB_DIGEST.bytes, 0x0a, name.length, ...name]);
    const reordered = Uint8Array.from([0x12, node.length, ...node]);
    expect(Buffer.compare(reordered, canonical)).not.toBe(0);
    const { response, error } = await rawPut(raw, [reordered]);
    expect(error).toBeUndefined();
    // PutDirectoryResponse: field 1, 32 bytes
    expect(Buffer.from(response!.subarray(2)).toString("hex")).toBe(directoryDigest(DIRECTORY_WITH_KEEP).hex);
  });

  it("an oversized message is RESOURCE_EXHAUSTED", async () => {
    const big = new Uint8Array(70 * 1024); // over maxMessageBytes (64 KiB)
    const { error } = await rawPut(raw, [big]);
    expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(h.store.map.size).toBe(0);
  });

  it("more directories than maxDirectoriesPerUpload is RESOURCE_EXHAUSTED", async () => {
    const { error } = await rawPut(
      raw,
      [DIRECTORY_A, DIRECTORY_A, DIRECTORY_A, DIRECTORY_B, DIRECTORY_D, DIRECTORY_D].map(enc),
    );
    expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error?.details).toMatch(/limit of 5 directories/);
    expect(h.store.map.size).toBe(0);
  });

  it("more bytes than maxUploadBytes is RESOURCE_EXHAUSTED", async () => {
    // five directories of ~50 KiB each (under the 64 KiB message limit), 250 KiB in all
    const dirs = [];
    for (let k = 0; k < 4; k++) {
      const files = [];
      for (let i = 0; i < 1200; i++)
        files.push(makeFileNode(`f${k}-${String(i).padStart(5, "0")}`, EMPTY_BLOB_DIGEST, 1));
      dirs.push(enc(makeDirectory({ files })));
    }
    expect(dirs[0].length).toBeGreaterThan(50_000);
    const { error } = await rawPut(raw, dirs);
    expect(error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error?.details).toMatch(/bytes/);
    expect(h.store.map.size).toBe(0);
  });

  it("a client whose connection drops mid-upload stores nothing", async () => {
    // a raw HTTP/2 client: a Put stream with A and B (a complete closure), then the socket dies
    const url = new URL(h.server.url!);
    let socket: net.Socket | undefined;
    const session = http2.connect(`http://${url.host}`, {
      createConnection: () => (socket = net.connect(Number(url.port), url.hostname)),
    });
    const stream = session.request({
      ":method": "POST",
      ":path": "/tvix.castore.v1.DirectoryService/Put",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    session.on("error", () => {});
    for (const m of [DIRECTORY_A, DIRECTORY_B].map(enc)) {
      const frame = Buffer.alloc(5 + m.length);
      frame.writeUInt32BE(m.length, 1);
      frame.set(m, 5);
      stream.write(frame);
    }
    await waitFor(() => h.server.activeCalls === 1, "the server has the upload open");
    socket!.destroy();
    // the call's end is the event that would have committed the upload
    await waitFor(() => h.server.activeCalls === 0, "the server has ended the call");
    expect(h.store.map.size).toBe(0);
    expect(h.store.putClosureCalls).toBe(0);
    expect(h.server.activeCalls).toBe(0);
  });

  it("our client's abort() mid-upload stores nothing (RST_STREAM without END_STREAM)", async () => {
    const putter = h.client.putMultipleStart();
    await putter.put(DIRECTORY_A);
    await putter.put(DIRECTORY_B); // A, B is a complete closure: a half-close now would commit it
    await waitFor(() => h.server.activeCalls === 1, "the server has the upload open");
    await putter.abort(new Error("changed my mind"));
    await waitFor(() => h.server.activeCalls === 0, "the server has ended the call");
    expect(h.store.map.size).toBe(0);
    expect(h.store.putClosureCalls).toBe(0);
    await expect(putter.put(DIRECTORY_D)).rejects.toMatchObject({ code: "ABORTED" });
    // and the connection is fine afterwards
    expect((await h.client.put(DIRECTORY_A)).hex).toBe(directoryDigest(DIRECTORY_A).hex);
  });

  it("an upload aborted through its AbortSignal stores nothing", async () => {
    const controller = new AbortController();
    const putter = h.client.putMultipleStart({ signal: controller.signal });
    await putter.put(DIRECTORY_A);
    await putter.put(DIRECTORY_B);
    await waitFor(() => h.server.activeCalls === 1, "the server has the upload open");
    controller.abort();
    await expect(putter.close()).rejects.toMatchObject({ code: "ABORTED" });
    await waitFor(() => h.server.activeCalls === 0, "the server has ended the call");
    expect(h.store.map.size).toBe(0);
  });
});

describe("the client's GetDirectoryRequest", () => {
  it("is the bytes protobuf-es encodes, recursive or not", () => {
    const digest = directoryDigest(DIRECTORY_A);
    for (const recursive of [false, true]) {
      const expected = toBinary(
        GetDirectoryRequestSchema,
        create(GetDirectoryRequestSchema, { byWhat: { case: "digest", value: digest.bytes }, recursive }),
      );
      expect(Buffer.from(getRequestBytes(digest, recursive)).toString("hex")).toBe(
        Buffer.from(expected).toString("hex"),
      );
    }
  });
});
