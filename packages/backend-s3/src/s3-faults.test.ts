/**
 * Failures: a fault-injecting proxy between the service and the S3 server
 * (500, 503, dropped connections, bodies cut short), damaged objects, and an
 * unreachable server. Afterwards the whole store is walked through a direct
 * client: no directory may be visible without its closure.
 */
import { BackendError, CorruptionError, Digest, type Directory, encodeDirectory } from "@castore-ts/core";
import { generateTree } from "@castore-ts/conformance";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLOSURE_MAGIC } from "./closure-format.js";
import { S3DirectoryService } from "./s3-service.js";
import { type Fault, FaultProxy, everyThirdFails } from "@castore-ts/testing";
import { collect, s3TestStoresForFile, upload } from "./test-s3.js";
import { randomDag } from "./test-trees.js";

const stores = s3TestStoresForFile();

const fast = { baseDelayMs: 5, maxDelayMs: 50 };

/** The directories of `dag` reachable from `top`, leaves to root. */
function subUpload(all: Directory[], digests: Digest[], top: number): Directory[] {
  const index = new Map(digests.map((d, i) => [d.hex, i]));
  const keep = new Set<number>();
  const visit = (i: number) => {
    if (keep.has(i)) return;
    keep.add(i);
    for (const c of all[i].directories) visit(index.get(Buffer.from(c.digest).toString("hex"))!);
  };
  visit(top);
  return [...keep].sort((a, b) => a - b).map((i) => all[i]);
}

describe("a proxy failing every third request (500, 503, dropped connections)", () => {
  const dag = randomDag(400, 21);
  const tops = [dag.directories.length - 1, 399, 350, 300, 250, 200];
  let proxy: FaultProxy;
  let service: S3DirectoryService;
  let prefix: string;

  beforeAll(async () => {
    proxy = await FaultProxy.start(stores.server.endpoint, { policy: everyThirdFails() });
    // Default maxAttempts (5); the proxy fails no request more than twice in a row.
    ({ service, prefix } = stores.open({ endpoint: proxy.endpoint, retry: fast }));
  });
  afterAll(async () => {
    await Promise.all([service?.close(), proxy?.stop()]);
  });

  it("still completes overlapping uploads, and leaves every visible directory with its whole closure", async () => {
    const roots = await Promise.all(tops.map((t) => upload(service, subUpload(dag.directories, dag.digests, t))));
    expect(roots.map((r) => r.hex)).toEqual(tops.map((t) => dag.digests[t].hex));
    expect(proxy.injected.get("500")).toBeGreaterThan(0);
    expect(proxy.injected.get("503")).toBeGreaterThan(0);
    expect(proxy.injected.get("drop-before")).toBeGreaterThan(0);
    expect(proxy.injected.get("drop-after")).toBeGreaterThan(0);

    const direct = stores.open({ prefix });
    try {
      const { visible } = await stores.checkInvariant(prefix, direct.service);
      expect(visible).toBe(dag.directories.length);
      expect(await collect(direct.service, dag.root)).toHaveLength(dag.directories.length);
    } finally {
      await direct.service.close();
    }
  }, 120_000);

  it("still completes reads", async () => {
    proxy.resetCounters();
    for (const t of tops) {
      expect(new Set((await collect(service, dag.digests[t])).map((d) => Digest.of(encodeDirectory(d)).hex))).toEqual(
        dag.closureOf(dag.digests[t].hex),
      );
    }
    for (const d of dag.digests.slice(0, 60)) expect(await service.get(d)).toBeDefined();
    expect(proxy.injected.size).toBeGreaterThan(0);
  }, 60_000);
});

describe("retries", () => {
  it("are bounded by maxAttempts, and counted apart from the requests", async () => {
    const writer = stores.open();
    await writer.service.put(generateTree({ directories: 1 }).directories[0]);
    const leaf = generateTree({ directories: 1 }).root;
    let failuresLeft = 0;
    const proxy = await FaultProxy.start(stores.server.endpoint, {
      policy: (): Fault => (failuresLeft-- > 0 ? { kind: "status", status: 503 } : { kind: "pass" }),
    });
    try {
      const three = stores.open({
        prefix: writer.prefix,
        endpoint: proxy.endpoint,
        retry: { maxAttempts: 3, ...fast },
      });
      failuresLeft = 2;
      expect(await three.service.get(leaf)).toBeDefined();
      expect(three.counter.retries).toBe(2);
      expect(three.counter.take().total).toBe(1);
      await three.service.close();

      const two = stores.open({ prefix: writer.prefix, endpoint: proxy.endpoint, retry: { maxAttempts: 2, ...fast } });
      failuresLeft = 2;
      const error = await two.service.get(leaf).catch((e) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect(error.message).toMatch(/SlowDown|503/);
      expect(two.counter.retries).toBe(1);
      expect(two.counter.take().total).toBe(1);
      await two.service.close();
    } finally {
      await Promise.all([writer.service.close(), proxy.stop()]);
    }
  });

  it("drop a silent connection after socketTimeoutMs and retry", async () => {
    const writer = stores.open();
    const leaf = generateTree({ directories: 1, seed: 3 });
    await writer.service.put(leaf.directories[0]);
    let hangs = 1;
    const proxy = await FaultProxy.start(stores.server.endpoint, {
      policy: (): Fault => (hangs-- > 0 ? { kind: "hang" } : { kind: "pass" }),
    });
    const { service, counter } = stores.open({
      prefix: writer.prefix,
      endpoint: proxy.endpoint,
      socketTimeoutMs: 300,
      retry: { maxAttempts: 2, ...fast },
    });
    try {
      expect(await service.get(leaf.root)).toBeDefined();
      expect(counter.retries).toBe(1);
      expect(counter.take().total).toBe(1);
      hangs = 5;
      // Only the socket timeout ends a hanging request (a hang would trip the test timeout instead).
      const error = await service.get(leaf.root).catch((e) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect(error.message).toMatch(/timed out|inactivity/);
    } finally {
      await Promise.all([writer.service.close(), service.close(), proxy.stop()]);
    }
  });

  it("a consumer pausing longer than socketTimeoutMs gets the rest by a resumed ranged GET", async () => {
    const tree = generateTree({ directories: 1_000, seed: 26 });
    const writer = stores.open();
    await upload(writer.service, tree.directories);
    await writer.service.close();
    const proxy = await FaultProxy.start(stores.server.endpoint, { trickleBytes: 4096, trickleDelayMs: 2 });
    const { service, counter } = stores.open({ prefix: writer.prefix, endpoint: proxy.endpoint, socketTimeoutMs: 300 });
    try {
      let n = 0;
      for await (const _ of service.getRecursive(tree.root)) {
        if (++n === 5) await new Promise((r) => setTimeout(r, 1_000));
      }
      expect(n).toBe(1_000);
      expect(counter.take().total).toBeGreaterThan(2);
    } finally {
      await Promise.all([service.close(), proxy.stop()]);
    }
  });

  it("resume a closure object whose body broke off, from where it stopped", async () => {
    const tree = generateTree({ directories: 1_000, seed: 22 });
    const writer = stores.open();
    await upload(writer.service, tree.directories);
    await writer.service.close();
    let cuts = 0;
    const proxy = await FaultProxy.start(stores.server.endpoint, {
      // The first two ranged GETs are cut after 50 000 bytes.
      policy: (r): Fault => (r.headers.range && cuts++ < 2 ? { kind: "cut-body", bytes: 50_000 } : { kind: "pass" }),
    });
    const { service, counter } = stores.open({ prefix: writer.prefix, endpoint: proxy.endpoint, retry: fast });
    try {
      expect(await collect(service, tree.root)).toHaveLength(1_000);
      expect(counter.take().byOperation.GetObject).toBe(1 + 3);
      const ranges = proxy.log.filter((r) => r.headers.range).map((r) => r.headers.range);
      expect(ranges[1]).not.toBe(ranges[0]); // resumed further on, not from the start
      expect(ranges[1]).toMatch(/^bytes=\d+-/);
      expect(
        proxy.log
          .filter((r) => r.headers.range)
          .slice(1)
          .every((r) => r.headers["if-match"]),
      ).toBe(true);
    } finally {
      await Promise.all([service.close(), proxy.stop()]);
    }
  });
});

describe("a server that ignores Range", () => {
  it("still serves getRecursive of roots and non-roots (the reader skips to the span)", async () => {
    const dag = randomDag(200, 25);
    const writer = stores.open();
    await upload(writer.service, dag.directories);
    await writer.service.close();
    const proxy = await FaultProxy.start(stores.server.endpoint, { ignoreRange: true });
    const { service } = stores.open({ prefix: writer.prefix, endpoint: proxy.endpoint });
    try {
      for (const d of [dag.root, ...dag.digests.slice(100, 200)]) {
        const got = await collect(service, d);
        expect(new Set(got.map((x) => Digest.of(encodeDirectory(x)).hex))).toEqual(dag.closureOf(d.hex));
      }
      expect(proxy.log.some((r) => r.headers.range)).toBe(true);
    } finally {
      await Promise.all([service.close(), proxy.stop()]);
    }
  });
});

describe("a failed upload", () => {
  it.each([0, 1, 40, 150])(
    "leaves no directory visible without its closure (server fails from request %i on)",
    async (passing) => {
      const tree = generateTree({ directories: 200, seed: 23 });
      let n = 0;
      const proxy = await FaultProxy.start(stores.server.endpoint, {
        policy: (): Fault => (n++ < passing ? { kind: "pass" } : { kind: "status", status: 500 }),
      });
      const { service, prefix } = stores.open({
        endpoint: proxy.endpoint,
        retry: { maxAttempts: 2, ...fast },
        concurrency: 8,
      });
      try {
        const error = await upload(service, tree.directories).catch((e) => e);
        expect(error).toBeInstanceOf(BackendError);
        const direct = stores.open({ prefix });
        const { visible } = await stores.checkInvariant(prefix, direct.service);
        await direct.service.close();
        expect(visible).toBeLessThan(200);
        if (passing <= 1) expect(visible).toBe(0);
        expect(await stores.exists(`${prefix}dirs/${tree.root.hex}`)).toBe(false);
      } finally {
        await Promise.all([service.close(), proxy.stop()]);
      }
    },
  );
});

describe("damaged objects", () => {
  const tree = generateTree({ directories: 400, seed: 24 });
  let service: S3DirectoryService;

  beforeAll(async () => {
    ({ service } = stores.open());
    await upload(service, tree.directories);
  });
  afterAll(async () => {
    await service?.close();
  });

  /** Runs `damage`, expects getRecursive(root) to fail with CorruptionError, then restores the object. */
  async function expectCorruptWalk(key: string, damage: (b: Buffer) => Buffer | undefined, pattern: RegExp) {
    const original = Buffer.from((await stores.getRaw(key))!);
    const damaged = damage(Buffer.from(original));
    if (damaged) await stores.putRaw(key, damaged);
    else await stores.deleteRaw(key);
    try {
      const seen: Directory[] = [];
      const error = await (async () => {
        for await (const d of service.getRecursive(tree.root)) seen.push(d);
      })().catch((e) => e);
      expect(error).toBeInstanceOf(CorruptionError);
      expect(error.message).toMatch(pattern);
      return seen.length;
    } finally {
      await stores.putRaw(key, original);
    }
  }

  it("a truncated closure object: getRecursive yields what arrived intact, then CorruptionError", async () => {
    const key = service.closureKey(tree.root);
    const seen = await expectCorruptWalk(key, (b) => b.subarray(0, Math.floor(b.length / 2)), /truncated/);
    expect(seen).toBeGreaterThan(1);
    expect(seen).toBeLessThan(400);
    expect(await collect(service, tree.root)).toHaveLength(400);
  });

  it("a closure object cut inside its first frames (range past the end)", async () => {
    await expectCorruptWalk(service.closureKey(tree.root), (b) => b.subarray(0, CLOSURE_MAGIC.length + 2), /truncated/);
  });

  it("a missing closure object", async () => {
    await expectCorruptWalk(service.closureKey(tree.root), () => undefined, /missing/);
  });

  it("a flipped byte inside a frame", async () => {
    await expectCorruptWalk(
      service.closureKey(tree.root),
      (b) => {
        b[b.length - 10] ^= 0x55;
        return b;
      },
      /corrupt|unexpected|not referred|premature|failed validation|holds directory/,
    );
  });

  it("a truncated or garbage index object: get and getRecursive raise CorruptionError", async () => {
    const d = tree.digests[10];
    const key = service.indexKey(d);
    const original = (await stores.getRaw(key))!;
    try {
      for (const bad of [original.subarray(0, 30), original.subarray(0, original.length - 1), Buffer.from("garbage")]) {
        await stores.putRaw(key, bad);
        await expect(service.get(d)).rejects.toBeInstanceOf(CorruptionError);
        await expect(collect(service, d)).rejects.toBeInstanceOf(CorruptionError);
      }
    } finally {
      await stores.putRaw(key, original);
    }
    expect(await service.get(d)).toBeDefined();
  });
});

describe("backend errors", () => {
  it("an unreachable server is a BackendError marked unavailable, without credentials in it", async () => {
    const service = new S3DirectoryService({
      bucket: "castore-nowhere",
      clientConfig: {
        endpoint: "http://127.0.0.1:1",
        region: "us-east-1",
        forcePathStyle: true,
        credentials: { accessKeyId: "AKIDVISIBLE", secretAccessKey: "s3cr3t-never-shown" },
      },
      retry: { maxAttempts: 2, ...fast },
    });
    try {
      const error = await service.get(Digest.of(new Uint8Array())).catch((e) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect(error.unavailable).toBe(true);
      expect(error.message).toContain("s3://castore-nowhere/");
      expect(error.message).toContain("127.0.0.1:1");
      expect(JSON.stringify({ message: error.message, stack: error.stack })).not.toContain("s3cr3t-never-shown");
    } finally {
      await service.close();
    }
  });

  it("a missing bucket is a BackendError naming it", async () => {
    const { service } = stores.open({ bucket: "castore-no-such-bucket" });
    try {
      const error = await service.get(Digest.of(new Uint8Array())).catch((e) => e);
      expect(error).toBeInstanceOf(BackendError);
      expect(error.unavailable).toBe(false);
      expect(error.message).toMatch(/bucket/i);
      const putError = await service.put(generateTree({ directories: 1 }).directories[0]).catch((e) => e);
      expect(putError).toBeInstanceOf(BackendError);
    } finally {
      await service.close();
    }
  });
});
