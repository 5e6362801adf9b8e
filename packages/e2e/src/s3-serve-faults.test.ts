/**
 * Fault test through `castore serve`: a fault-injecting loopback proxy
 * (FaultProxy) in front of the S3 test server answers 500/503, drops
 * connections, cuts response bodies short and trickles bodies slowly, on a
 * fixed schedule; castore serves `s3://…?endpoint=<proxy>`. Uploads through
 * gRPC clients complete (retries are bounded, and the schedule never fails a
 * request more often than the retry budget) or fail cleanly with a gRPC
 * status; a phase where every PUT fails beyond the budget makes uploads fail
 * cleanly. Afterwards `castore verify` through a direct URL to the real
 * server finds every stored directory with its whole closure.
 *
 * Runs the built CLI (@castore-ts/cli/bin) and talks to it with the gRPC client
 * (@castore-ts/backend-grpc).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrpcDirectoryService, grpcCodeOf } from "@castore-ts/backend-grpc";
import { type OverlappingTree, overlappingTree, taggedDirectory } from "@castore-ts/conformance";
import {
  type Fault,
  FaultProxy,
  type ProxiedRequest,
  type S3TestServer,
  runCastore,
  startCastoreServe,
  startS3TestServer,
} from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

function attemptOf(req: ProxiedRequest): number {
  return Number(/attempt=(\d+)/.exec(String(req.headers["amz-sdk-request"] ?? ""))?.[1] ?? 1);
}

/**
 * Every third request faults, in turn 500, 503, dropped before forwarding,
 * dropped after forwarding, body cut short (GETs); a request already on its
 * third attempt passes, so the default 5 attempts always suffice.
 */
function schedule(): (req: ProxiedRequest) => Fault {
  let k = 0;
  return (req) => {
    if (req.n % 3 !== 0 || attemptOf(req) > 2) return { kind: "pass" };
    const faults: Fault[] = [
      { kind: "status", status: 500 },
      { kind: "status", status: 503 },
      { kind: "drop-before" },
      { kind: "drop-after" },
      req.method === "GET" ? { kind: "cut-body", bytes: 10 } : { kind: "status", status: 503 },
    ];
    return faults[k++ % faults.length];
  };
}

describe("s3 behind a faulty proxy, under castore serve", () => {
  let s3: S3TestServer;
  let bucket: string;
  let proxy: FaultProxy;
  beforeAll(async () => {
    s3 = await startS3TestServer();
    bucket = await s3.createBucket();
    proxy = await FaultProxy.start(s3.endpoint, { policy: schedule(), trickleBytes: 2048, trickleDelayMs: 2 });
  }, 180_000);
  afterAll(async () => {
    await proxy?.stop();
    await s3?.stop();
  });

  const storeUrl = (endpoint: string, extra = "") =>
    `s3://${encodeURIComponent(s3.accessKeyId)}:${encodeURIComponent(s3.secretAccessKey)}@${bucket}/faults?endpoint=${encodeURIComponent(endpoint)}&region=${s3.region}&forcePathStyle=true${extra}`;

  it(
    "retries within bounds, fails cleanly beyond them, and never stores a directory without its closure",
    { timeout: 300_000 },
    async () => {
      const serve = await startCastoreServe(CASTORE_BIN, [
        "--listen",
        "127.0.0.1:0",
        "--store",
        storeUrl(proxy.endpoint),
      ]);
      const shared = Array.from({ length: 30 }, (_, i) => taggedDirectory(`leaf-${i}`));
      const clients = Array.from({ length: 4 }, () =>
        GrpcDirectoryService.fromUrl(serve.url, { connectTimeoutMs: 5_000 }),
      );
      const acknowledged: OverlappingTree[] = [];
      try {
        // Phase 1: faults within the retry budget: every upload completes, every read is whole.
        await Promise.all(
          clients.map(async (client, c) => {
            for (let i = 0; i < 3; i++) {
              const tree = overlappingTree(`ok-c${c}-u${i}`, shared, 40);
              const putter = client.putMultipleStart();
              for (const d of tree.leavesToRoot) await putter.put(d);
              expect((await putter.close()).hex).toBe(tree.root.hex);
              acknowledged.push(tree);
            }
          }),
        );
        for (const [i, tree] of acknowledged.entries()) {
          let n = 0;
          for await (const _ of clients[i % clients.length].getRecursive(tree.root)) n++;
          expect(n).toBe(tree.closureSize);
        }
        for (const kind of ["500", "503", "drop-before", "drop-after"])
          expect(proxy.injected.get(kind), kind).toBeGreaterThan(0);

        // Phase 2: every PUT fails, beyond any retry budget: uploads fail cleanly (a gRPC status, no hang).
        proxy.options.policy = (req) => (req.method === "PUT" ? { kind: "status", status: 503 } : { kind: "pass" });
        const failing = await Promise.allSettled(
          clients.map(async (client, c) => {
            const tree = overlappingTree(`fail-c${c}`, shared, 40);
            const putter = client.putMultipleStart();
            for (const d of tree.leavesToRoot) await putter.put(d);
            return putter.close();
          }),
        );
        for (const r of failing) {
          expect(r.status).toBe("rejected");
          const code = grpcCodeOf((r as PromiseRejectedResult).reason);
          expect([13, 14], String((r as PromiseRejectedResult).reason)).toContain(code);
        }

        // Phase 3: the proxy heals; the same server and clients work again.
        proxy.options.policy = schedule();
        const after = overlappingTree("after", shared, 40);
        const putter = clients[0].putMultipleStart();
        for (const d of after.leavesToRoot) await putter.put(d);
        expect((await putter.close()).hex).toBe(after.root.hex);
        let n = 0;
        for await (const _ of clients[1].getRecursive(after.root)) n++;
        expect(n).toBe(after.closureSize);
      } finally {
        await Promise.all(clients.map((c) => c.close()));
        await serve.stop();
      }

      // Verify through the real server, bypassing the proxy: whole store, then the acknowledged roots.
      const whole = await runCastore(CASTORE_BIN, ["verify", storeUrl(s3.endpoint)]);
      expect(whole.stderr).toMatch(/ 0 problems/);
      expect(whole.code).toBe(0);
      const roots = await runCastore(CASTORE_BIN, [
        "verify",
        storeUrl(s3.endpoint),
        ...acknowledged.map((t) => t.root.hex),
      ]);
      expect(roots.stderr).toMatch(/ 0 problems/);
      expect(roots.code).toBe(0);
    },
  );
});
