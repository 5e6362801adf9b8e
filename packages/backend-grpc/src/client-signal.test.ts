/**
 * A caller may pass the same long-lived signal (an application's shutdown
 * signal, say) to every call. The clients must leave nothing on it once a
 * call is over: combining it with a call's own signal through
 * AbortSignal.any() made Node 20 keep every combined signal for good
 * (nodejs/node#55351), about 65 bytes per finished call and some KiB per
 * call cut short.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Digest, fixtures, makeDirectory, makeDirectoryNode } from "@castore-ts/core";
import { GrpcBlobService } from "./grpc-blob-service.js";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import { createDirectoryServiceServer } from "./server.js";
import { memoryService } from "./memory-store.test-helper.js";
import { MapBlobService, testBytes } from "./blob-store.test-helper.js";
import { heldBy } from "@castore-ts/testing";

const { DIRECTORY_A, DIRECTORY_B } = fixtures;
const CALLS = 20;
const CHUNK = 64 * 1024;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function drain(stream: AsyncIterable<unknown> | undefined): Promise<number> {
  if (!stream) throw new Error("no stream");
  let n = 0;
  for await (const _ of stream) n++;
  return n;
}

describe("a caller's signal holds nothing for finished client calls", () => {
  it("after gets, reads, uploads, and failed, aborted and abandoned calls, no listener and no dependant is left on it", async () => {
    const server = createDirectoryServiceServer(memoryService().service, {
      listen: { host: "127.0.0.1", port: 0 },
      blobs: new MapBlobService(CHUNK),
    });
    await server.listen();
    cleanups.push(() => server.close({ deadlineMs: 1000 }));
    const directories = GrpcDirectoryService.fromUrl(server.url!);
    const blobs = GrpcBlobService.fromUrl(server.url!);
    cleanups.push(
      () => directories.close(),
      () => blobs.close(),
    );

    const caller = new AbortController();
    const { signal } = caller;
    const a = await directories.put(DIRECTORY_A, { signal });
    const upload = directories.putMultipleStart({ signal });
    await upload.put(DIRECTORY_A);
    await upload.put(DIRECTORY_B);
    const b = await upload.close();
    const dangling = makeDirectory({ directories: [makeDirectoryNode("x", Digest.of(testBytes(8)).bytes, 0n)] });
    const bytes = testBytes(4 * CHUNK + 10);
    const writer = blobs.openWriter({ signal });
    await writer.write(bytes);
    const { digest: blob } = await writer.close();

    for (let i = 0; i < CALLS; i++) {
      expect(await directories.get(a, { signal })).toEqual(DIRECTORY_A);
      expect(await drain(directories.getRecursive(b, { signal }))).toBe(2);
      for await (const _ of directories.getRecursive(b, { signal })) break; // left after the first
      await expect(directories.put(dangling, { signal })).rejects.toThrow();
      const putter = directories.putMultipleStart({ signal });
      await putter.put(DIRECTORY_A);
      await putter.abort();

      expect(await blobs.stat(blob, { signal })).toEqual({ size: bytes.length });
      expect(await blobs.has([blob], { signal })).toEqual([true]);
      expect(await drain(await blobs.read(blob, { signal }))).toBeGreaterThan(0); // whole: one call, cut at the chunks
      expect(await drain(await blobs.read(blob, { signal, offset: CHUNK + 1, length: 10 }))).toBe(1); // one chunk fetched
      for await (const _ of (await blobs.read(blob, { signal, offset: CHUNK, length: 2 * CHUNK }))!) break;
      const w = blobs.openWriter({ signal });
      await w.write(testBytes(100, i + 2));
      await w.abort();
    }
    expect(signal.aborted).toBe(false);
    expect(heldBy(signal)).toEqual({ listeners: 0, dependants: 0 });
  });
});
