/**
 * The seed's test (tvix grpc.rs `mod tests`), ported: a server on a Unix
 * socket (and on TCP), a GrpcDirectoryService client, the same sequence.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "@castore-ts/testing";
import { directoryDigest, fixtures } from "@castore-ts/core";
import { type Harness, startHarness } from "./memory-store.test-helper.js";

const { DIRECTORY_A, DIRECTORY_B } = fixtures;

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe.each(["unix", "tcp"] as const)("seed test sequence over %s", (transport) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(transport);
  });
  afterAll(() => h.close());
  afterEach(async () => {
    // no call is left running on the server (e.g. a rejected upload whose request side stayed open)
    await waitFor(() => h.server.activeCalls === 0);
    expect(h.server.activeCalls).toBe(0);
  });

  const a = directoryDigest(DIRECTORY_A);
  const b = directoryDigest(DIRECTORY_B);

  it("get of DIRECTORY_A before upload is undefined", async () => {
    expect(await h.client.get(a)).toBeUndefined();
  });

  it("put(A) returns A's digest; get(A) returns A", async () => {
    expect((await h.client.put(DIRECTORY_A)).hex).toBe(a.hex);
    expect(await h.client.get(a)).toEqual(DIRECTORY_A);
  });

  it("put(B) alone fails: it refers to A", async () => {
    await expect(h.client.put(DIRECTORY_B)).rejects.toMatchObject({ code: "CLOSURE" });
  });

  it("an upload of B alone: put succeeds (sent ahead), close fails", async () => {
    const putter = h.client.putMultipleStart();
    await putter.put(DIRECTORY_B);
    await expect(putter.close()).rejects.toMatchObject({ code: "CLOSURE" });
  });

  it("A then B succeeds, close returns B's digest", async () => {
    const putter = h.client.putMultipleStart();
    await putter.put(DIRECTORY_A);
    await putter.put(DIRECTORY_B);
    expect((await putter.close()).hex).toBe(b.hex);
  });

  it("getRecursive(B) is B then A", async () => {
    expect(await collect(h.client.getRecursive(b))).toEqual([DIRECTORY_B, DIRECTORY_A]);
  });

  it("B then A fails, at the second put (if the error came back already) or at close (burst allowance)", async () => {
    const putter = h.client.putMultipleStart();
    await putter.put(DIRECTORY_B); // sending out B is always fine
    let putAFailed = false;
    try {
      await putter.put(DIRECTORY_A);
    } catch (e) {
      putAFailed = true;
      expect(e).toMatchObject({ code: "CLOSURE" });
    }
    if (!putAFailed) {
      // The error had not come back yet: close waits for the server and must fail.
      await expect(putter.close()).rejects.toMatchObject({ code: "CLOSURE" });
    }
  });

  it("B, then wait until the server closed the stream: put after that fails", async () => {
    const putter = h.client.putMultipleStart();
    await putter.put(DIRECTORY_B);
    // the putter has no event for this: poll; if the server never ends the call the test times out
    await waitFor(() => putter.isClosed());
    await expect(putter.put(DIRECTORY_A)).rejects.toMatchObject({ code: "CLOSURE" });
    // close reports the same failure
    await expect(putter.close()).rejects.toMatchObject({ code: "CLOSURE" });
  });
});
