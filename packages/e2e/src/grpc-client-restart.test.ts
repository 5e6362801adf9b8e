/**
 * Fault test: the server process is killed in the middle of a long
 * getRecursive and started again on the same address and store. The client
 * must fail that call (a BackendError / UNAVAILABLE, not a hang) and the next
 * call on the SAME client instance must reconnect and work.
 *
 * Runs `castore serve` (@castore-ts/cli/bin, the built CLI) on an lmdb store.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startCastoreServe } from "@castore-ts/testing";
import { Code } from "@connectrpc/connect";
import {
  BackendError,
  Digest,
  type Directory,
  compareBytes,
  encodeDirectory,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
} from "@castore-ts/core";
import { GrpcDirectoryService, grpcCodeOf } from "@castore-ts/backend-grpc";
import { CASTORE_BIN } from "./castore-bin.js";

const LEAVES = 12_000;

/** A root with LEAVES distinct children of ~10 files each (~6 MB on the wire: far more than the client's receive window). */
function bigTree(): { leavesToRoot: Directory[]; root: Digest } {
  const leaves: { name: string; digest: Digest; dir: Directory }[] = [];
  for (let i = 0; i < LEAVES; i++) {
    const files = Array.from({ length: 10 }, (_, k) =>
      makeFileNode(`file-${k}`, new Uint8Array(32).fill((i * 7 + k) & 0xff), i * 10 + k),
    );
    const dir = makeDirectory({ files });
    leaves.push({ name: `leaf-${String(i).padStart(6, "0")}`, digest: Digest.of(encodeDirectory(dir)), dir });
  }
  leaves.sort((a, b) => compareBytes(Buffer.from(a.name), Buffer.from(b.name)));
  const root = makeDirectory({ directories: leaves.map((l) => makeDirectoryNode(l.name, l.digest, 10)) });
  return { leavesToRoot: [...leaves.map((l) => l.dir), root], root: Digest.of(encodeDirectory(root)) };
}

describe("grpc client: server restarted mid-stream", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "castore-grpc-faults-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("fails the running getRecursive, then the same client reconnects", { timeout: 120_000 }, async () => {
    const store = `lmdb://${join(dir, "store")}`;
    let server = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", store]);
    const port = new URL(server.url.replace(/^grpc\+/, "")).port;
    const client = await GrpcDirectoryService.fromUrl(server.url, { connectTimeoutMs: 5_000 });
    try {
      const tree = bigTree();
      const putter = client.putMultipleStart();
      for (const d of tree.leavesToRoot) await putter.put(d);
      expect((await putter.close()).hex).toBe(tree.root.hex);

      // A long getRecursive, consumed slowly: kill the server after a few directories.
      let received = 0;
      let error: unknown;
      try {
        for await (const _ of client.getRecursive(tree.root)) {
          received++;
          if (received === 5) await server.stop("SIGKILL");
        }
      } catch (e) {
        error = e;
      }
      expect(error, `stream ended normally after ${received} directories`).toBeDefined();
      expect(received).toBeLessThan(LEAVES + 1);
      const code = grpcCodeOf(error);
      expect(error instanceof BackendError || code === Code.Unavailable, `${String(error)} (code ${code})`).toBe(true);

      // A call while the server is down fails too (no hang).
      await expect(client.get(tree.root)).rejects.toThrow();

      server = await startCastoreServe(CASTORE_BIN, ["--listen", `127.0.0.1:${port}`, "--store", store]);
      // The same client instance: reconnects, reads the whole tree.
      let n = 0;
      for await (const _ of client.getRecursive(tree.root)) n++;
      expect(n).toBe(LEAVES + 1);
      expect((await client.get(tree.root))?.directories.length).toBe(LEAVES);
    } finally {
      await client.close();
      await server.stop("SIGKILL");
    }
  });
});
