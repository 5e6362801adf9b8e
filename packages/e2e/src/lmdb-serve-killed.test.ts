/**
 * Fault test: `castore serve --store lmdb://…` killed with SIGKILL while
 * several gRPC client uploads are in flight, then restarted on the same store.
 * Every upload acknowledged before the kill (close() resolved) must be
 * readable in full, and `castore verify lmdb://…` (whole store) must be clean.
 *
 * Runs the built CLI (@castore-ts/cli/bin) and talks to it with the gRPC client
 * (@castore-ts/backend-grpc).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCastore, startCastoreServe } from "@castore-ts/testing";
import { Digest, encodeDirectory } from "@castore-ts/core";
import { type OverlappingTree, overlappingTree, taggedDirectory } from "@castore-ts/conformance";

import { GrpcDirectoryService } from "@castore-ts/backend-grpc";
import { CASTORE_BIN } from "./castore-bin.js";

describe("lmdb: castore serve killed with SIGKILL during uploads", () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "castore-lmdb-faults-"));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("keeps every acknowledged upload; verify is clean", { timeout: 240_000 }, async () => {
    const store = `lmdb://${join(tmp, "store")}`;
    const shared = Array.from({ length: 50 }, (_, i) => taggedDirectory(`leaf-${i}`));
    const acknowledged: OverlappingTree[] = [];
    const UPLOADERS = 6;
    for (let round = 0; round < 2; round++) {
      const server = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", store]);
      const clients = Array.from({ length: UPLOADERS }, () =>
        GrpcDirectoryService.fromUrl(server.url, { connectTimeoutMs: 5_000 }),
      );
      let failedAfterKill = 0;
      let killed = false;
      const before = acknowledged.length;
      let inFlight = 0;
      let maxInFlightAtKill = 0;
      const uploaders = clients.map(async (client, c) => {
        for (let i = 0; !killed; i++) {
          const tree = overlappingTree(`r${round}-c${c}-u${i}`, shared, 400);
          inFlight++;
          try {
            const putter = client.putMultipleStart();
            for (const d of tree.leavesToRoot) await putter.put(d);
            const root = await putter.close();
            expect(root.hex).toBe(tree.root.hex);
            acknowledged.push(tree);
          } catch (e) {
            if (!killed) throw e;
            failedAfterKill++;
          } finally {
            inFlight--;
          }
        }
      });
      // Kill once a few uploads are acknowledged, with others in flight.
      let broken: unknown;
      const all = Promise.all(uploaders).catch((e) => (broken = e ?? new Error("upload failed")));
      while (acknowledged.length < before + 8 && broken === undefined) await new Promise((r) => setTimeout(r, 20));
      if (broken !== undefined) {
        killed = true;
        await server.stop("SIGKILL");
        throw broken;
      }
      maxInFlightAtKill = inFlight;
      killed = true;
      await server.stop("SIGKILL");
      await all;
      if (broken !== undefined) throw broken;
      await Promise.all(clients.map((c) => c.close()));
      expect(maxInFlightAtKill).toBeGreaterThan(0);
      expect(failedAfterKill).toBeGreaterThan(0);

      // Restarted on the same store: every acknowledged upload reads back in full.
      const again = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", store]);
      const client = GrpcDirectoryService.fromUrl(again.url);
      try {
        for (const tree of acknowledged) {
          const seen = new Set<string>();
          for await (const d of client.getRecursive(tree.root)) seen.add(Digest.of(encodeDirectory(d)).hex);
          expect(seen.size, `closure of ${tree.root.hex}`).toBe(
            new Set(tree.leavesToRoot.map((d) => Digest.of(encodeDirectory(d)).hex)).size,
          );
        }
      } finally {
        await client.close();
        await again.stop();
      }
    }

    const verified = await runCastore(CASTORE_BIN, ["verify", store]);
    expect(verified.stderr).toMatch(/ 0 problems/);
    expect(verified.code).toBe(0);
  });
});
