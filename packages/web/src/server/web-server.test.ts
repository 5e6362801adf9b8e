/**
 * The web port over a real socket: /raw and /blob with a plain node HTTP
 * client (Range edge cases included), and the read-only castore services
 * through connect-node's Connect and gRPC-web clients over HTTP/1.1.
 */
import * as http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { create } from "@bufbuild/protobuf";
import { BlobService, DirectoryService, DirectorySchema, RefService } from "@castore-ts/proto";
import { createWebServer, type WebServer } from "./web-server.js";
import { makeTestTree, type TestTree } from "./test-tree.js";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(base: string, path: string, opts: { method?: string; headers?: http.OutgoingHttpHeaders } = {}) {
  return new Promise<Answer>((resolve, reject) => {
    const req = http.request(new URL(path, base), { method: opts.method ?? "GET", headers: opts.headers }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (d: Buffer) => parts.push(d));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

let tree: TestTree;
let server: WebServer;
let base: string;
const chunkReads: string[] = [];

beforeAll(async () => {
  tree = await makeTestTree();
  // Count chunk reads on the real store, to see that a range reads only the chunks it overlaps.
  const store = tree.store.blobs.store;
  const getChunk = store.getChunk.bind(store);
  store.getChunk = (digest, opts) => {
    chunkReads.push(digest.hex);
    return getChunk(digest, opts);
  };
  server = createWebServer({ ...tree.store, listen: { host: "127.0.0.1", port: 0 } });
  await server.listen();
  base = server.url!;
});

afterAll(async () => {
  await server?.close();
});

describe("/raw and /blob", () => {
  it("serves a file's bytes with length, type, disposition and the digest as ETag", async () => {
    const a = await request(base, `/raw/${tree.root.hex}/hello.txt`);
    expect(a.status).toBe(200);
    expect(a.body).toEqual(Buffer.from(tree.hello));
    expect(a.headers["content-length"]).toBe(String(tree.hello.length));
    expect(a.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(a.headers["content-disposition"]).toBe('inline; filename="hello.txt"');
    const stat = await tree.store.blobs.stat((await import("@castore-ts/core")).Digest.of(tree.hello));
    expect(stat?.size).toBe(tree.hello.length);
    expect(a.headers.etag).toBe(`"${(await import("@castore-ts/core")).Digest.of(tree.hello).hex}"`);
    expect(a.headers["accept-ranges"]).toBe("bytes");
    // Stored files never run as the app's origin.
    expect(a.headers["content-security-policy"]).toMatch(/default-src 'none'.*sandbox/);
  });

  it("walks nested directories, a ref (its / as %2F) and names that are not UTF-8 (%E9 is the byte 0xe9)", async () => {
    const nested = await request(base, `/raw/ref:releases%2Flatest/sub/deeper/deep.txt?download`);
    expect(nested.status).toBe(200);
    expect(nested.body).toEqual(Buffer.from(tree.hello));
    expect(nested.headers["content-disposition"]).toBe('attachment; filename="deep.txt"');
    const latin1 = await request(base, `/raw/${tree.root.hex}/caf%E9.txt`);
    expect(latin1.status).toBe(200);
    expect(latin1.body).toEqual(Buffer.from(tree.latin1));
    // The name is not UTF-8: only the ASCII fallback, never a filename* claiming UTF-8.
    expect(latin1.headers["content-disposition"]).toBe('inline; filename="caf_.txt"');
    const blob = await request(base, `/blob/${(await import("@castore-ts/core")).Digest.of(tree.big).hex}`);
    expect(blob.status).toBe(200);
    expect(blob.headers["content-type"]).toBe("application/octet-stream");
    expect(blob.body.equals(Buffer.from(tree.big))).toBe(true);
  });

  it("answers a missing path, a directory, a symlink, an unknown ref and a bad digest with one line", async () => {
    const cases: [string, number, RegExp][] = [
      [`/raw/${tree.root.hex}/nope.txt`, 404, /nope\.txt: no such file or directory/],
      [`/raw/${tree.root.hex}/hello.txt/below`, 404, /no such file or directory/],
      [`/raw/${tree.root.hex}/sub`, 404, /sub is a directory, not a file/],
      [`/raw/${tree.root.hex}/link`, 404, /link is a symlink \(to hello\.txt\), not a file/],
      [`/raw/ref:no-such/x`, 404, /no ref no-such/],
      [`/raw/${"0".repeat(64)}/x`, 404, /directory 0{64} not found/],
      [`/raw/not-a-digest/x`, 400, /invalid digest/],
      [`/raw/${tree.root.hex}/a%2Fb`, 400, /cannot be a name/],
      [`/blob/${"1".repeat(64)}`, 404, /blob 1{64} not found/],
    ];
    for (const [path, status, reason] of cases) {
      const a = await request(base, path);
      expect({ path, status: a.status }).toEqual({ path, status });
      const text = a.body.toString("utf8");
      expect(text).toMatch(reason);
      expect(text.trimEnd().includes("\n")).toBe(false);
    }
  });

  it("refuses writes on /raw", async () => {
    const a = await request(base, `/raw/${tree.root.hex}/hello.txt`, { method: "PUT" });
    expect(a.status).toBe(405);
  });

  it("answers HEAD with the headers and no body", async () => {
    const a = await request(base, `/raw/${tree.root.hex}/sub/big.bin`, { method: "HEAD" });
    expect(a.status).toBe(200);
    expect(a.headers["content-length"]).toBe(String(tree.big.length));
    expect(a.body.length).toBe(0);
  });
});

describe("Range", () => {
  const big = () => `/raw/${tree.root.hex}/sub/big.bin`;
  const size = () => tree.big.length;

  it("answers single ranges with 206 and exactly the bytes asked for", async () => {
    const cases: [string, number, number][] = [
      ["bytes=0-0", 0, 0],
      ["bytes=0-9", 0, 9],
      ["bytes=-1", size() - 1, size() - 1],
      ["bytes=-100", size() - 100, size() - 1],
      ["bytes=1000000-", 1_000_000, size() - 1],
      ["bytes=600000-1400000", 600_000, 1_400_000], // spans chunk boundaries
      [`bytes=${size() - 5}-${size() + 1000}`, size() - 5, size() - 1], // an end past the file is clamped
      [`bytes=-${size() + 50}`, 0, size() - 1], // a suffix longer than the file is all of it
    ];
    for (const [range, start, end] of cases) {
      const a = await request(base, big(), { headers: { range } });
      expect({ range, status: a.status }).toEqual({ range, status: 206 });
      expect(a.headers["content-range"]).toBe(`bytes ${start}-${end}/${size()}`);
      expect(a.headers["content-length"]).toBe(String(end - start + 1));
      expect(a.body.equals(Buffer.from(tree.big.subarray(start, end + 1)))).toBe(true);
    }
  });

  it("reads only the chunks a range overlaps", async () => {
    const digest = (await import("@castore-ts/core")).Digest.of(tree.big);
    const stat = await tree.store.blobs.stat(digest, { chunks: true });
    expect(stat!.chunks!.length).toBeGreaterThan(3);
    const first = stat!.chunks![0];
    chunkReads.length = 0;
    const a = await request(base, big(), { headers: { range: `bytes=0-${first.size - 1}` } });
    expect(a.status).toBe(206);
    expect(chunkReads).toEqual([first.digest.hex]);
  });

  it("answers 416 with the size for ranges that select nothing", async () => {
    for (const range of [`bytes=${size()}-`, `bytes=${size() + 10}-${size() + 20}`, "bytes=-0"]) {
      const a = await request(base, big(), { headers: { range } });
      expect({ range, status: a.status }).toEqual({ range, status: 416 });
      expect(a.headers["content-range"]).toBe(`bytes */${size()}`);
    }
    const empty = await request(base, `/raw/${tree.root.hex}/empty`, { headers: { range: "bytes=0-" } });
    expect(empty.status).toBe(416);
    expect(empty.headers["content-range"]).toBe("bytes */0");
  });

  it("answers the whole file to a list of ranges, an invalid range, a stale If-Range or another unit", async () => {
    const whole = [
      { range: "bytes=0-1,5-6" },
      { range: "bytes=9-3" },
      { range: "items=0-3" },
      { range: "bytes=0-3", "if-range": '"not-the-digest"' },
    ];
    for (const headers of whole) {
      const a = await request(base, `/raw/${tree.root.hex}/hello.txt`, { headers });
      expect({ headers, status: a.status }).toEqual({ headers, status: 200 });
      expect(a.body).toEqual(Buffer.from(tree.hello));
    }
    const etag = (await request(base, `/raw/${tree.root.hex}/hello.txt`, { method: "HEAD" })).headers.etag!;
    const matching = await request(base, `/raw/${tree.root.hex}/hello.txt`, {
      headers: { range: "bytes=0-4", "if-range": etag },
    });
    expect(matching.status).toBe(206);
    expect(matching.body.toString()).toBe("hello");
    const notModified = await request(base, `/raw/${tree.root.hex}/hello.txt`, { headers: { "if-none-match": etag } });
    expect(notModified.status).toBe(304);
  });
});

describe("castore services over Connect and gRPC-web (HTTP/1.1)", () => {
  for (const protocol of ["connect", "grpc-web"] as const) {
    const transport = () =>
      protocol === "connect"
        ? createConnectTransport({ baseUrl: base, httpVersion: "1.1" })
        : createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" });

    it(`${protocol}: Get (recursive too), refs Get/List, blob Stat/Read`, async () => {
      const directories = createClient(DirectoryService, transport());
      const one = [];
      for await (const d of directories.get({ byWhat: { case: "digest", value: tree.root.bytes } })) one.push(d);
      expect(one.length).toBe(1);
      expect(one[0].files.map((f) => Buffer.from(f.name).toString("latin1"))).toEqual([
        "caf\xe9.txt",
        "empty",
        "hello.txt",
        "run.sh",
      ]);
      const all = [];
      for await (const d of directories.get({ byWhat: { case: "digest", value: tree.root.bytes }, recursive: true })) {
        all.push(d);
      }
      expect(all.length).toBe(3);
      const refs = createClient(RefService, transport());
      expect(Buffer.from((await refs.get({ name: "releases/latest" })).digest)).toEqual(Buffer.from(tree.root.bytes));
      const listed = [];
      for await (const r of refs.list({ prefix: "" })) listed.push(r.name);
      expect(listed).toEqual(["releases/latest"]);
      const blobs = createClient(BlobService, transport());
      const digest = (await import("@castore-ts/core")).Digest.of(tree.big);
      const stat = await blobs.stat({ digest: digest.bytes, sendChunks: true });
      expect(stat.chunks.length).toBeGreaterThan(3);
      const parts: Uint8Array[] = [];
      for await (const c of blobs.read({ digest: digest.bytes })) parts.push(c.data);
      expect(Buffer.concat(parts).equals(Buffer.from(tree.big))).toBe(true);
    });

    it(`${protocol}: absent things are NOT_FOUND and every write is PERMISSION_DENIED`, async () => {
      const directories = createClient(DirectoryService, transport());
      const refs = createClient(RefService, transport());
      const blobs = createClient(BlobService, transport());
      await expect(refs.get({ name: "no-such" })).rejects.toMatchObject({ code: Code.NotFound });
      await expect(blobs.stat({ digest: new Uint8Array(32) })).rejects.toMatchObject({ code: Code.NotFound });
      const denied = (e: unknown) => {
        expect(e).toBeInstanceOf(ConnectError);
        expect((e as ConnectError).code).toBe(Code.PermissionDenied);
        expect((e as ConnectError).rawMessage).toMatch(/read-only/);
      };
      await refs.set({ name: "evil", digest: tree.root.bytes }).then(() => expect.unreachable(), denied);
      await refs.delete({ name: "releases/latest" }).then(() => expect.unreachable(), denied);
      async function* one() {
        yield create(DirectorySchema, {});
      }
      await directories.put(one()).then(() => expect.unreachable(), denied);
      expect(await tree.store.refs.get("releases/latest")).toBeDefined();
      expect(await tree.store.refs.get("evil")).toBeUndefined();
    });
  }
});

describe("the app's static files", () => {
  it("serves hashed assets immutable, index.html no-cache, and index.html for every app route", async () => {
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { tmpdir } = await import("node:os");
    const { loadStaticAssets } = await import("./static-assets.js");
    const dir = mkdtempSync(join(tmpdir(), "castore-web-assets-"));
    mkdirSync(join(dir, "assets"));
    writeFileSync(join(dir, "index.html"), "<!doctype html><title>castore</title>");
    writeFileSync(join(dir, "assets", "index-AbC123.js"), "console.log(1)");
    const withApp = createWebServer({
      ...tree.store,
      listen: { host: "127.0.0.1", port: 0 },
      assets: loadStaticAssets(dir),
    });
    await withApp.listen();
    try {
      const asset = await request(withApp.url!, "/assets/index-AbC123.js");
      expect(asset.status).toBe(200);
      expect(asset.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect(asset.headers["content-type"]).toBe("text/javascript; charset=utf-8");
      for (const path of ["/", `/tree/${tree.root.hex}/sub`]) {
        const index = await request(withApp.url!, path);
        expect({ path, status: index.status }).toEqual({ path, status: 200 });
        expect(index.headers["cache-control"]).toBe("no-cache");
        expect(index.body.toString()).toContain("<title>castore</title>");
        const again = await request(withApp.url!, path, { headers: { "if-none-match": index.headers.etag! } });
        expect(again.status).toBe(304);
      }
      expect((await request(withApp.url!, "/assets/missing.js")).status).toBe(404);
    } finally {
      await withApp.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a web port with a token", () => {
  it("refuses the services, /raw and /blob without the bearer token, serves them with it", async () => {
    const guarded = createWebServer({
      ...tree.store,
      listen: { host: "127.0.0.1", port: 0 },
      authorize: (header) => header === "Bearer s3cret",
    });
    await guarded.listen();
    try {
      const url = guarded.url!;
      const raw = `/raw/${tree.root.hex}/hello.txt`;
      const without = await request(url, raw);
      expect(without.status).toBe(401);
      expect(without.headers["www-authenticate"]).toBe('Bearer realm="castore"');
      expect(without.body.toString()).not.toContain("s3cret");
      expect((await request(url, raw, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
      const withToken = await request(url, raw, { headers: { authorization: "Bearer s3cret" } });
      expect(withToken.status).toBe(200);
      expect(withToken.body).toEqual(Buffer.from(tree.hello));
      const anonymous = createClient(RefService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
      await expect(anonymous.get({ name: "releases/latest" })).rejects.toMatchObject({ code: Code.Unauthenticated });
      const signedIn = createClient(
        RefService,
        createConnectTransport({
          baseUrl: url,
          httpVersion: "1.1",
          interceptors: [
            (next) => (req) => {
              req.header.set("authorization", "Bearer s3cret");
              return next(req);
            },
          ],
        }),
      );
      expect(Buffer.from((await signedIn.get({ name: "releases/latest" })).digest)).toEqual(
        Buffer.from(tree.root.bytes),
      );
    } finally {
      await guarded.close();
    }
  });
});
