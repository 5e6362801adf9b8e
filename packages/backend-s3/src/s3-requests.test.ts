/**
 * Request counts of each operation (README "Request counts"), counted by a
 * middleware on the client, against a real S3 server over loopback HTTP.
 */
import { AbortError, Digest, encodeDirectory, fixtures, openDirectoryService } from "@castore-ts/core";
import { deepChain, generateTree, wideDirectory } from "@castore-ts/conformance";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "./index.js";
import { layoutClosure } from "./closure-format.js";
import { RequestCounter } from "./request-counter.js";
import type { S3DirectoryService } from "./s3-service.js";
import { FaultProxy } from "@castore-ts/testing";
import { collect, s3TestStoresForFile, upload } from "./test-s3.js";
import { randomDag, validated } from "./test-trees.js";

const stores = s3TestStoresForFile();

describe("request counts", () => {
  const tree = generateTree({ directories: 300, seed: 7 });
  const N = tree.directories.length;
  let service: S3DirectoryService;
  let counter: RequestCounter;

  beforeAll(async () => {
    ({ service, counter } = stores.open());
  });
  afterAll(async () => {
    await service?.close();
  });

  it("an upload of N directories is N + 1 PUTs: the closure object and one index object each", async () => {
    counter.reset();
    expect((await upload(service, tree.directories)).hex).toBe(tree.root.hex);
    expect(counter.take()).toEqual({ total: N + 1, byOperation: { PutObject: N + 1 } });
  });

  it("an upload of one directory without child directories is 1 PUT", async () => {
    counter.reset();
    await service.put(fixtures.DIRECTORY_WITH_KEEP);
    expect(counter.take()).toEqual({ total: 1, byOperation: { PutObject: 1 } });
  });

  it("get of any stored directory, root or not, is 1 GET; of an absent one too", async () => {
    for (const d of [tree.root, tree.digests[0], tree.digests[N >> 1], tree.digests[N - 2]]) {
      counter.reset();
      expect(await service.get(d)).toBeDefined();
      expect(counter.take()).toEqual({ total: 1, byOperation: { GetObject: 1 } });
    }
    counter.reset();
    expect(await service.get(Digest.of(new Uint8Array([1, 2, 3])))).toBeUndefined();
    expect(counter.take().total).toBe(1);
  });

  it("getRecursive of the root is 2 GETs and yields the whole closure", async () => {
    counter.reset();
    const got = await collect(service, tree.root);
    expect(got.length).toBe(N);
    expect(counter.take()).toEqual({ total: 2, byOperation: { GetObject: 2 } });
  });

  it("getRecursive of every non-root directory is 2 GETs (1 without child directories) and yields its sub-closure", async () => {
    const children = new Map<string, string[]>();
    tree.directories.forEach((d, i) =>
      children.set(
        tree.digests[i].hex,
        d.directories.map((c) => Buffer.from(c.digest).toString("hex")),
      ),
    );
    const size = (hex: string): number => 1 + children.get(hex)!.reduce((n, c) => n + size(c), 0);
    for (let i = 0; i < N - 1; i += 7) {
      const d = tree.digests[i];
      counter.reset();
      const got = await collect(service, d);
      expect(got.length).toBe(size(d.hex));
      expect(counter.take().total).toBe(children.get(d.hex)!.length === 0 ? 1 : 2);
    }
  });

  it("getRecursive of an absent digest is 1 GET and yields nothing", async () => {
    counter.reset();
    expect(await collect(service, Digest.of(new Uint8Array([9])))).toEqual([]);
    expect(counter.take().total).toBe(1);
  });

  it("a repeated upload is again N + 1 PUTs on a server that ignores If-None-Match (s3rver)", async () => {
    counter.reset();
    await upload(service, tree.directories);
    expect(counter.take().total).toBe(N + 1);
  });

  it("listDigests lists every stored directory (1 request per 1 000)", async () => {
    counter.reset();
    const listed = new Set<string>();
    for await (const d of service.listDigests()) listed.add(d.hex);
    expect(listed.size).toBe(N + 1); // the tree and WITH_KEEP
    for (const d of tree.digests) expect(listed.has(d.hex)).toBe(true);
    expect(counter.take().byOperation.ListObjectsV2).toBe(1);
  });

  it("an aborted upload sends nothing", async () => {
    counter.reset();
    const putter = service.putMultipleStart();
    for (const d of tree.directories.slice(0, 20)) await putter.put(d);
    await putter.abort();
    expect(counter.total).toBe(0);
  });
});

describe("getRecursive of deep and wide trees", () => {
  // One GET of the root's index object, one of the closure object (streamed): never one per level.
  it("a 1 000-deep chain is 2 GETs", async () => {
    const tree = deepChain(1000);
    const { service, counter } = stores.open();
    try {
      await upload(service, tree.directories);
      counter.reset();
      const got = await collect(service, tree.root);
      expect(got.map((d) => Digest.of(encodeDirectory(d)).hex)).toEqual(tree.digests.map((d) => d.hex).reverse());
      expect(counter.take()).toEqual({ total: 2, byOperation: { GetObject: 2 } });
    } finally {
      await service.close();
    }
  });

  it("a directory of 10 000 entries (2 000 of them directories) is 2 GETs", async () => {
    const tree = wideDirectory(10_000);
    const { service, counter } = stores.open();
    try {
      await upload(service, tree.directories);
      counter.reset();
      expect(await collect(service, tree.root)).toHaveLength(2);
      expect(counter.take()).toEqual({ total: 2, byOperation: { GetObject: 2 } });
    } finally {
      await service.close();
    }
  });
});

describe("shared subtrees (a DAG)", () => {
  it("getRecursive of every directory yields exactly its closure in 2 GETs (1 for a leaf)", async () => {
    const dag = randomDag(150, 4);
    const { service, counter } = stores.open();
    try {
      await upload(service, dag.directories);
      for (const d of [...dag.digests].reverse()) {
        counter.reset();
        const got = await collect(service, d);
        const expected = dag.closureOf(d.hex);
        expect(new Set(got.map((x) => Digest.of(encodeDirectory(x)).hex))).toEqual(expected);
        expect(counter.take().total).toBe(expected.size === 1 ? 1 : 2);
      }
    } finally {
      await service.close();
    }
  });
});

describe("conditional writes", () => {
  it("a re-upload where the server honours If-None-Match: 412 on the closure, then every object of it touched (N + 1 COPYs, spec §10.2)", async () => {
    const tree = generateTree({ directories: 100, seed: 8 });
    const first = stores.open();
    const proxy = await FaultProxy.start(stores.server.endpoint, {
      emulateIfNoneMatch: (path) => stores.exists(path.slice(stores.bucket.length + 1)),
    });
    const { service, counter } = stores.open({ prefix: first.prefix, endpoint: proxy.endpoint });
    try {
      await upload(first.service, tree.directories);
      counter.reset();
      expect((await upload(service, tree.directories)).hex).toBe(tree.root.hex);
      expect(counter.take()).toEqual({ total: 1 + 101, byOperation: { PutObject: 1, CopyObject: 101 } });
      // A half-finished earlier upload (closure object there, root index missing) is completed, existing index objects
      // kept (touched); the two missing ones are found by their touch (404) and PUT.
      await stores.deleteRaw(service.indexKey(tree.root));
      await stores.deleteRaw(service.indexKey(tree.digests[5]));
      counter.reset();
      await upload(service, tree.directories);
      expect(counter.take()).toEqual({ total: 1 + 101 + 2, byOperation: { PutObject: 3, CopyObject: 101 } });
      expect(await collect(service, tree.root)).toHaveLength(100);
      expect(await service.get(tree.digests[5])).toBeDefined();
    } finally {
      await Promise.all([service.close(), first.service.close(), proxy.stop()]);
    }
  });

  it("a server answering 501 to If-None-Match gets plain PUTs from then on (auto mode)", async () => {
    const tree = generateTree({ directories: 50, seed: 9 });
    const proxy = await FaultProxy.start(stores.server.endpoint, { refuseIfNoneMatch: true });
    const { service, counter } = stores.open({ endpoint: proxy.endpoint });
    try {
      await upload(service, tree.directories);
      expect(counter.take().total).toBe(1 + 50 + 1); // one refused PUT, then N + 1
      await upload(service, generateTree({ directories: 10, seed: 10 }).directories);
      expect(counter.take().total).toBe(11);
      expect(proxy.log.filter((r) => r.headers["if-none-match"]).length).toBe(1);
    } finally {
      await Promise.all([service.close(), proxy.stop()]);
    }
  });

  it("conditionalWrites: false sends no If-None-Match", async () => {
    const proxy = await FaultProxy.start(stores.server.endpoint);
    const { service } = stores.open({ endpoint: proxy.endpoint, conditionalWrites: false });
    try {
      await upload(service, generateTree({ directories: 10, seed: 12 }).directories);
      expect(proxy.log.length).toBe(11);
      expect(proxy.log.some((r) => r.headers["if-none-match"])).toBe(false);
    } finally {
      await Promise.all([service.close(), proxy.stop()]);
    }
  });
});

describe("bounded concurrency", () => {
  it("keeps at most `concurrency` requests in flight during an upload", async () => {
    const proxy = await FaultProxy.start(stores.server.endpoint);
    const { service } = stores.open({ endpoint: proxy.endpoint, concurrency: 4 });
    try {
      await upload(service, generateTree({ directories: 200, seed: 13 }).directories);
      expect(proxy.requests).toBe(201);
      expect(proxy.maxInFlight).toBeLessThanOrEqual(4);
      expect(proxy.maxInFlight).toBeGreaterThan(1);
    } finally {
      await Promise.all([service.close(), proxy.stop()]);
    }
  });
});

describe("streaming getRecursive", () => {
  it("yields directories before the closure object has arrived, and stops reading when the consumer stops", async () => {
    const tree = generateTree({ directories: 3_000, seed: 14 });
    const closure = validated(tree.directories);
    const objectBytes = layoutClosure(closure.entries, closure.root).body.length;
    const writer = stores.open();
    await upload(writer.service, tree.directories);
    await writer.service.close();
    const proxy = await FaultProxy.start(stores.server.endpoint, { trickleBytes: 8 * 1024, trickleDelayMs: 5 });
    const { service, counter } = stores.open({ prefix: writer.prefix, endpoint: proxy.endpoint });
    try {
      let seen = 0;
      let bytesAtSecond = 0;
      for await (const _ of service.getRecursive(tree.root)) {
        seen++;
        if (seen === 2) bytesAtSecond = proxy.bodyBytesSent;
        if (seen === 50) break;
      }
      const bytesAtStop = proxy.bodyBytesSent;
      await new Promise((r) => setTimeout(r, 300));
      expect(bytesAtSecond).toBeLessThan(objectBytes / 10);
      // The proxy stopped sending once the request was aborted.
      expect(proxy.bodyBytesSent - bytesAtStop).toBeLessThan(64 * 1024);
      expect(proxy.bodyBytesSent).toBeLessThan(objectBytes / 2);
      expect(counter.take().total).toBe(2);
      // The service keeps working.
      expect((await collect(service, tree.root)).length).toBe(tree.directories.length);
    } finally {
      await Promise.all([service.close(), proxy.stop()]);
    }
  }, 60_000);

  it("an aborted signal ends getRecursive with AbortError", async () => {
    const tree = generateTree({ directories: 500, seed: 15 });
    const { service } = stores.open();
    try {
      await upload(service, tree.directories);
      const controller = new AbortController();
      const run = async () => {
        let n = 0;
        for await (const _ of service.getRecursive(tree.root, { signal: controller.signal })) {
          if (++n === 3) controller.abort(new Error("stop"));
        }
      };
      await expect(run()).rejects.toBeInstanceOf(AbortError);
      expect((await collect(service, tree.root)).length).toBe(500);
    } finally {
      await service.close();
    }
  });
});

describe("openDirectoryService", () => {
  it("opens s3:// URLs with credentials in the user info", async () => {
    const s = stores.server;
    const url =
      `s3://${encodeURIComponent(s.accessKeyId)}:${encodeURIComponent(s.secretAccessKey)}@${stores.bucket}/via-url` +
      `?endpoint=${encodeURIComponent(s.endpoint)}&region=${s.region}&forcePathStyle=true`;
    const service = await openDirectoryService(url);
    try {
      const tree = generateTree({ directories: 20, seed: 16 });
      const putter = service.putMultipleStart();
      for (const d of tree.directories) await putter.put(d);
      expect((await putter.close()).hex).toBe(tree.root.hex);
      const got = [];
      for await (const d of service.getRecursive(tree.root)) got.push(d);
      expect(got.length).toBe(20);
      expect(await stores.exists(`via-url/closures/${tree.root.hex}`)).toBe(true);
    } finally {
      await service.close();
    }
  });
});
