import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { mapLimit } from "./s3-objects.js";

/** A request as the SDK makes one: a listener on its signal while in flight, removed when it ends. */
async function request(signal: AbortSignal | undefined, ms: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

describe("mapLimit", () => {
  it("puts one listener on the caller's signal however many requests run, and none once it returns", async () => {
    const caller = new AbortController();
    let most = 0;
    let inFlight = 0;
    let mostInFlight = 0;
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on("warning", onWarning);
    try {
      const out = await mapLimit([...Array(100).keys()], 32, caller.signal, async (i, signal) => {
        inFlight++;
        mostInFlight = Math.max(mostInFlight, inFlight);
        most = Math.max(most, getEventListeners(caller.signal, "abort").length);
        await request(signal, 1);
        inFlight--;
        return i * 2;
      });
      expect(out).toEqual([...Array(100).keys()].map((i) => i * 2));
    } finally {
      process.off("warning", onWarning);
    }
    expect(mostInFlight).toBe(32);
    expect(most).toBe(1);
    expect(getEventListeners(caller.signal, "abort")).toHaveLength(0);
    expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning")).toEqual([]);
  });

  it("the caller's abort reaches every request in flight; the first failure is reported once all have ended", async () => {
    const caller = new AbortController();
    let ended = 0;
    const run = mapLimit([...Array(20).keys()], 8, caller.signal, async (_i, signal) => {
      try {
        await request(signal, 60_000);
      } finally {
        ended++;
      }
    });
    caller.abort(new Error("stop"));
    await expect(run).rejects.toThrow("stop");
    expect(ended).toBe(8); // the eight in flight ended; no more were started
    expect(getEventListeners(caller.signal, "abort")).toHaveLength(0);
  });

  it("the first failure stops the calls in flight and is the one reported, with or without a caller's signal", async () => {
    for (const caller of [undefined, new AbortController().signal]) {
      let stopped = 0;
      const run = mapLimit([...Array(10).keys()], 4, caller, async (i, signal) => {
        if (i === 2) throw new Error("item 2 failed");
        try {
          await request(signal, 60_000);
        } catch (e) {
          stopped++;
          throw e;
        }
      });
      await expect(run).rejects.toThrow("item 2 failed");
      expect(stopped).toBe(3); // the other three in flight, aborted; none started after
    }
  });
});
