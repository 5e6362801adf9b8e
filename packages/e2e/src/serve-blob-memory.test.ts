/**
 * Streams stay streams (spec §8): a blob far larger than a handful of chunks
 * goes into and out of `castore serve` (lmdb store) while the server's
 * anonymous memory stays bounded. The server runs as its own process, so its
 * RssAnon (/proc/PID/status) is its heap and buffers alone; LMDB's file pages
 * count elsewhere (RssFile). It is sampled after every 4 MiB piece.
 *
 * The bound is loose on purpose (garbage is collected when V8 decides), but
 * an upload or download held in memory, even a fraction of it, crosses it:
 * before the request-body fix in grpc-call-handler.ts the server held every
 * received byte until the call ended (~1.2 × the blob).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "@castore-ts/backend-grpc";
import { openBlobService } from "@castore-ts/core";
import { startCastoreServe } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

const MiB = 1024 * 1024;
const BLOB_MIB = 384;
/** Growth over the idle server that fails the test: a third of the blob. */
const BOUND_MIB = 128;

function anonMiB(pid: number): number {
  const kib = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (kib === undefined) throw new Error(`no RssAnon in /proc/${pid}/status`);
  return Number(kib) / 1024;
}

describe("castore serve: memory during a large blob put and read", () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "castore-blob-memory-"));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it(`stays within ${BOUND_MIB} MiB of idle for a ${BLOB_MIB} MiB blob`, { timeout: 600_000 }, async () => {
    const server = await startCastoreServe(CASTORE_BIN, [
      "--listen",
      "127.0.0.1:0",
      "--store",
      `lmdb://${join(tmp, "store")}`,
    ]);
    const pid = server.child.pid!;
    const client = await openBlobService(server.url);
    try {
      // Warm-up, so that the store and the code paths exist before the idle figure.
      const warm = client.openWriter();
      await warm.write(new Uint8Array(2 * MiB).fill(7));
      await warm.close();
      const idle = anonMiB(pid);

      const piece = new Uint8Array(4 * MiB);
      for (let i = 0; i < piece.length; i++) piece[i] = (i * 2654435761) >>> 24;
      let peak = 0;
      const writer = client.openWriter();
      for (let i = 0; i < BLOB_MIB / 4; i++) {
        piece[0] = i; // no two pieces alike
        await writer.write(piece);
        peak = Math.max(peak, anonMiB(pid));
      }
      const { digest, size } = await writer.close();
      expect(size).toBe(BLOB_MIB * MiB);
      expect(peak - idle, `put: peak RssAnon ${peak.toFixed(0)} MiB, idle ${idle.toFixed(0)} MiB`).toBeLessThan(
        BOUND_MIB,
      );

      peak = 0;
      let read = 0;
      for await (const part of (await client.read(digest))!) {
        read += part.length;
        peak = Math.max(peak, anonMiB(pid));
      }
      expect(read).toBe(BLOB_MIB * MiB);
      expect(peak - idle, `read: peak RssAnon ${peak.toFixed(0)} MiB, idle ${idle.toFixed(0)} MiB`).toBeLessThan(
        BOUND_MIB,
      );
    } finally {
      await client.close();
      await server.stop();
    }
  });
});
