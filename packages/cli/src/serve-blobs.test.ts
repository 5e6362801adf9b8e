/**
 * `castore serve` serves the blobs of its --store beside its directories when
 * the store's scheme keeps blobs, and says in its startup line whether it does.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, expect, it } from "vitest";
import { Digest, knownBlobSchemes, openBlobService } from "@castore-ts/core";
import "@castore-ts/backend-memory";
import "@castore-ts/backend-lmdb";
import { grpcCodeOf } from "@castore-ts/backend-grpc";
import { startCastoreServe } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

const UNIMPLEMENTED = 12;

describe("castore serve and blobs", () => {
  it("serves the blobs of memory:// over gRPC, and says so", async () => {
    const server = await startCastoreServe(CASTORE_CLI, ["--listen", "127.0.0.1:0", "--store", "memory://"]);
    try {
      expect(server.stderr()).toContain("(directories and blobs)");
      const blobs = await openBlobService(server.url);
      try {
        const bytes = new TextEncoder().encode("blob over castore serve");
        const w = blobs.openWriter();
        await w.write(bytes);
        const { digest } = await w.close();
        expect(digest.equals(Digest.of(bytes))).toBe(true);
        expect(await blobs.has([digest])).toEqual([true]);
      } finally {
        await blobs.close();
      }
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it("a store whose scheme keeps no blobs: serves directories only, says so, blob calls are UNIMPLEMENTED", async (ctx) => {
    // lmdb:// until it keeps blobs too (issue 17); then no scheme is left to show this with.
    if (knownBlobSchemes().includes("lmdb")) ctx.skip("lmdb:// keeps blobs now: every local scheme serves them");
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "castore-serve-blobs-"));
    const server = await startCastoreServe(CASTORE_CLI, [
      "--listen",
      "127.0.0.1:0",
      "--store",
      `lmdb://${path.join(dir, "store")}`,
    ]);
    try {
      expect(server.stderr()).toContain("(directories only: this store's scheme keeps no blobs)");
      const blobs = await openBlobService(server.url);
      try {
        const error = await blobs.has([Digest.of(new Uint8Array([1]))]).catch((e: unknown) => e);
        expect(grpcCodeOf(error)).toBe(UNIMPLEMENTED);
      } finally {
        await blobs.close();
      }
    } finally {
      expect(await server.stop()).toBe(0);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
