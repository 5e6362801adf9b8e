/**
 * The closing rules of DirectoryPutter (service.ts) on core's ClosurePutter,
 * with stores whose commit waits until the test lets it go: put() and a
 * second close() while close() runs are refused, and abort() during close()
 * either stops the commit or says it came too late.
 */
import { describe, expect, it } from "vitest";
import { directoryDigest } from "./canonical.js";
import type { ClosureEntry } from "./closure.js";
import { ClosureValidator } from "./closure.js";
import { AbortError, ClosureError, throwIfAborted } from "./errors.js";
import { DIRECTORY_A as A, DIRECTORY_B as B, DIRECTORY_C as C } from "./fixtures.js";
import { StoreDirectoryService } from "./store-service.js";
import { MapStore, StreamingMapStore } from "./test-memory-store.js";

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/**
 * A MapStore whose putClosure starts, reports that it started, then waits for
 * `release` before storing. With `honourSignal`, an abort while it waits
 * stops it (nothing stored), as an engine that checks its signal does.
 */
class SlowCommitStore extends MapStore {
  readonly release = gate();
  readonly started = gate();
  committed: string[] = [];
  constructor(private readonly honourSignal: boolean) {
    super();
  }
  override async putClosure(entries: ClosureEntry[], signal?: AbortSignal) {
    this.started.open();
    const aborted = new Promise<void>((resolve) => signal?.addEventListener("abort", () => resolve(), { once: true }));
    await Promise.race(this.honourSignal ? [this.release.opened, aborted] : [this.release.opened]);
    if (this.honourSignal) throwIfAborted(signal);
    // What is stored is read only now, after put() had every chance to add to it.
    this.committed = entries.map((e) => e.digest.hex);
    await super.putClosure(entries);
  }
}

const dA = directoryDigest(A);
const dB = directoryDigest(B);
const dC = directoryDigest(C);

describe("ClosurePutter while close() runs", () => {
  it("put() is refused with ClosureError, and the late directory is not stored", async () => {
    const store = new SlowCommitStore(false);
    const putter = new StoreDirectoryService(store).putMultipleStart();
    await putter.put(A);
    await putter.put(B);
    const closing = putter.close();
    await store.started.opened;
    // C would be a second root: an upload that took it could not be connected.
    await expect(putter.put(C)).rejects.toThrow(ClosureError);
    await expect(putter.put(C)).rejects.toThrow(/already closed/);
    store.release.open();
    expect((await closing).hex).toBe(dB.hex);
    expect(store.committed).toEqual([dA.hex, dB.hex]);
    expect(store.map.has(dC.hex)).toBe(false);
  });

  it("put() right after close(), before the commit started, is refused too", async () => {
    const store = new SlowCommitStore(false);
    const putter = new StoreDirectoryService(store).putMultipleStart();
    await putter.put(A);
    await putter.put(B);
    const closing = putter.close();
    await expect(putter.put(C)).rejects.toThrow(ClosureError);
    store.release.open();
    expect((await closing).hex).toBe(dB.hex);
    expect(store.committed).toEqual([dA.hex, dB.hex]);
  });

  it("a second close() is refused with ClosureError; the first resolves with the root", async () => {
    const store = new SlowCommitStore(false);
    const putter = new StoreDirectoryService(store).putMultipleStart();
    await putter.put(A);
    await putter.put(B);
    const first = putter.close();
    const second = putter.close();
    await expect(second).rejects.toThrow(ClosureError);
    store.release.open();
    expect((await first).hex).toBe(dB.hex);
    await expect(putter.close()).rejects.toThrow(ClosureError);
  });

  it("abort() during a commit that stops on its signal: abort resolves, close rejects with AbortError, nothing stored", async () => {
    const store = new SlowCommitStore(true);
    const putter = new StoreDirectoryService(store).putMultipleStart();
    await putter.put(A);
    await putter.put(B);
    const closing = putter.close();
    closing.catch(() => {});
    await store.started.opened;
    await putter.abort(new Error("changed my mind"));
    await expect(closing).rejects.toThrow(AbortError);
    expect(store.map.size).toBe(0);
    await expect(putter.put(C)).rejects.toThrow(AbortError);
    await expect(putter.close()).rejects.toThrow(AbortError);
  });

  it("abort() during a commit that completes anyway: abort rejects saying so, close resolves with the root", async () => {
    const store = new SlowCommitStore(false);
    const putter = new StoreDirectoryService(store).putMultipleStart();
    await putter.put(A);
    await putter.put(B);
    const closing = putter.close();
    await store.started.opened;
    const aborting = putter.abort();
    aborting.catch(() => {});
    store.release.open();
    await expect(aborting).rejects.toThrow(ClosureError);
    await expect(aborting).rejects.toThrow(/too late: the upload was already committed as [0-9a-f]{64}/);
    expect((await closing).hex).toBe(dB.hex);
    expect(store.map.has(dB.hex)).toBe(true);
    // Settled: a later abort() has nothing to do.
    await putter.abort();
  });

  it("abort() right after close(), before the commit started, stops it on any store", async () => {
    const store = new MapStore();
    const putter = new StoreDirectoryService(store).putMultipleStart();
    await putter.put(A);
    await putter.put(B);
    const closing = putter.close();
    closing.catch(() => {});
    await putter.abort();
    await expect(closing).rejects.toThrow(AbortError);
    expect(store.map.size).toBe(0);
  });

  it("a streaming store: abort() while the last write runs drops the upload, and commit is never called", async () => {
    const store = new StreamingMapStore();
    const writing = gate();
    const release = gate();
    const service = new StoreDirectoryService(store);
    const upload = store.openUpload.bind(store);
    store.openUpload = () => {
      const u = upload();
      const write = u.write;
      return {
        ...u,
        write: async (entries: ClosureEntry[]) => {
          writing.open();
          await release.opened;
          return write(entries);
        },
      };
    };
    const putter = service.putMultipleStart();
    await putter.put(A);
    await putter.put(B);
    const closing = putter.close();
    closing.catch(() => {});
    await writing.opened;
    const aborting = putter.abort();
    release.open();
    await aborting;
    await expect(closing).rejects.toThrow(AbortError);
    expect(store.events).toEqual(["open", "write 2", "abort"]);
    expect(store.map.size).toBe(0);
  });

  it("the caller's signal aborted during the commit stops it like abort()", async () => {
    const store = new SlowCommitStore(true);
    const controller = new AbortController();
    const putter = new StoreDirectoryService(store).putMultipleStart({ signal: controller.signal });
    await putter.put(A);
    const closing = putter.close();
    closing.catch(() => {});
    await store.started.opened;
    controller.abort(new Error("caller gave up"));
    await expect(closing).rejects.toThrow(AbortError);
    expect(store.map.size).toBe(0);
  });
});

describe("ClosureValidator after finish()", () => {
  it("refuses more directories: the closure it returned does not change under a commit", () => {
    const v = new ClosureValidator();
    v.add(A);
    v.add(B);
    const closure = v.finish();
    expect(() => v.add(C)).toThrow(ClosureError);
    expect(closure.entries.map((e) => e.digest.hex)).toEqual([dA.hex, dB.hex]);
  });
});
