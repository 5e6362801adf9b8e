/**
 * `castore serve` serves the blobs of its --store beside its directories when
 * the store's scheme keeps blobs, and says in its startup line whether it does.
 */
import { describe, expect, it } from "vitest";
import { Digest, knownBlobSchemes, openBlobService } from "@castore-ts/core";
import "@castore-ts/backend-memory";
import { grpcCodeOf } from "@castore-ts/backend-grpc";
import { startCastoreServe } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

const UNIMPLEMENTED = 12;

describe("castore serve and blobs", () => {
  it("serves memory://'s blobs when memory keeps blobs, else says so and answers UNIMPLEMENTED", async () => {
    const server = await startCastoreServe(CASTORE_CLI, ["--listen", "127.0.0.1:0", "--store", "memory://"]);
    try {
      const blobs = await openBlobService(server.url);
      try {
        const bytes = new TextEncoder().encode("blob over castore serve");
        if (knownBlobSchemes().includes("memory")) {
          expect(server.stderr()).toContain("(directories and blobs)");
          const w = blobs.openWriter();
          await w.write(bytes);
          const { digest } = await w.close();
          expect(digest.equals(Digest.of(bytes))).toBe(true);
          expect(await blobs.has([digest])).toEqual([true]);
        } else {
          expect(server.stderr()).toContain("(directories only: this store's scheme keeps no blobs)");
          const error = await blobs.has([Digest.of(bytes)]).catch((e: unknown) => e);
          expect(grpcCodeOf(error)).toBe(UNIMPLEMENTED);
        }
      } finally {
        await blobs.close();
      }
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
