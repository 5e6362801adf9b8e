import { describe, expect, it } from "vitest";
import { directoryDigest, encodeDirectory } from "./canonical.js";
import { Digest } from "./digest.js";
import { AbortError, BackendError, ClosureError, CorruptionError, ValidationError } from "./errors.js";
import { DIRECTORY_A as A, DIRECTORY_B as B, DIRECTORY_C as C, DIRECTORY_D as D } from "./fixtures.js";
import { StoreDirectoryService } from "./store-service.js";
import { mapService, MapStore, StreamingMapStore } from "./test-memory-store.js";
import {
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
  directorySize,
  type Directory,
} from "./model.js";

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("StoreDirectoryService (putter + breadth-first reader)", () => {
  it("put(B) fails even after A is stored; nothing of it is stored", async () => {
    const { service, store } = mapService();
    await service.put(A);
    await expect(service.put(B)).rejects.toThrow(ClosureError);
    expect(store.map.size).toBe(1);
  });
  it("an upload is invisible until close, and close twice / put after close fail", async () => {
    const { service } = mapService();
    const p = service.putMultipleStart();
    await p.put(A);
    await p.put(B);
    expect(await service.get(directoryDigest(B))).toBeUndefined();
    expect((await p.close()).equals(directoryDigest(B))).toBe(true);
    expect(await service.get(directoryDigest(B))).toEqual(B);
    await expect(p.close()).rejects.toThrow(/already closed/);
    await expect(p.put(A)).rejects.toThrow(/already closed/);
  });
  it("an error at put is reported again at close; abort stores nothing", async () => {
    const { service, store } = mapService();
    const p = service.putMultipleStart();
    await expect(p.put(B)).rejects.toThrow(ClosureError);
    await expect(p.close()).rejects.toThrow(ClosureError);
    const q = service.putMultipleStart();
    await q.put(A);
    await q.abort();
    await expect(q.close()).rejects.toThrow(AbortError);
    expect(store.map.size).toBe(0);
  });
  it("a file or directory size outside uint64 is a ValidationError naming the node; nothing is stored", async () => {
    const { service, store } = mapService();
    for (const size of [-1n, -200n, 2n ** 64n]) {
      const file = makeDirectory({ files: [makeFileNode("f", directoryDigest(A).bytes, size)] });
      await expect(service.put(file)).rejects.toThrow(ValidationError);
      await expect(service.put(file)).rejects.toThrow(/invalid size .* in files\[0\] "f"/);
      const dir = makeDirectory({ directories: [makeDirectoryNode("d", directoryDigest(A), size)] });
      const p = service.putMultipleStart();
      await p.put(A);
      await expect(p.put(dir)).rejects.toThrow(/invalid size .* in directories\[0\] "d"/);
      await expect(p.close()).rejects.toThrow(ValidationError);
    }
    expect(store.map.size).toBe(0);
  });
  it("getRecursive is breadth first, each digest once, one read per level", async () => {
    const { service, store } = mapService();
    const p = service.putMultipleStart();
    for (const d of [A, B, C, D]) await p.put(d);
    // D is the root only if C is referred to; upload D's closure instead
    await expect(p.close()).rejects.toThrow(/not connected/);
    const q = service.putMultipleStart();
    for (const d of [A, B, D]) await q.put(d);
    await q.close();
    store.reads = 0;
    const got = await collect(service.getRecursive(directoryDigest(D)));
    expect(got).toEqual([D, A, B]);
    expect(store.reads).toBe(2); // level {D}, then {A, B}; B's child A was already seen, so no third level
  });
  it("getRecursiveEncoded yields getRecursive's directories, each with its canonical bytes, and checks them alike", async () => {
    for (const read of ["batch", "synchronous"] as const) {
      const { service, store } = mapService();
      if (read === "synchronous") Object.assign(store, { openReader: () => (d: Digest) => store.map.get(d.hex) });
      const q = service.putMultipleStart();
      for (const d of [A, B, D]) await q.put(d);
      await q.close();
      const root = directoryDigest(D);
      const encoded = await collect(service.getRecursiveEncoded(root));
      expect(encoded.map((e) => e.directory)).toEqual(await collect(service.getRecursive(root)));
      for (const e of encoded) expect(e.bytes).toEqual(encodeDirectory(e.directory));
      expect(await collect(service.getRecursiveEncoded(directoryDigest(C)))).toEqual([]);
      store.map.set(directoryDigest(A).hex, encodeDirectory(C));
      await expect(collect(service.getRecursiveEncoded(root)), read).rejects.toThrow(CorruptionError);
    }
  });
  it("getRecursive of an absent root is empty; a missing child is corruption", async () => {
    const { service, store } = mapService();
    expect(await collect(service.getRecursive(directoryDigest(B)))).toEqual([]);
    await service.putMultipleStart().put(A);
    const p = service.putMultipleStart();
    await p.put(A);
    await p.put(B);
    await p.close();
    store.map.delete(directoryDigest(A).hex);
    await expect(collect(service.getRecursive(directoryDigest(B)))).rejects.toThrow(/below root .* is missing/);
  });
  it("corrupt bytes are reported by get and getRecursive, never returned", async () => {
    const { service, store } = mapService();
    await service.put(A);
    store.map.set(directoryDigest(A).hex, encodeDirectory(B));
    await expect(service.get(directoryDigest(A))).rejects.toThrow(CorruptionError);
    await expect(collect(service.getRecursive(directoryDigest(A)))).rejects.toThrow(CorruptionError);
  });
  it("engine failures become BackendError naming the backend", async () => {
    const store = new MapStore();
    store.getMany = async () => {
      throw new Error("disk on fire");
    };
    const service = new StoreDirectoryService(store);
    await expect(service.get(directoryDigest(A))).rejects.toThrow(BackendError);
    await expect(service.get(directoryDigest(A))).rejects.toThrow("test-map: disk on fire");
  });
  it("stops reading when the consumer stops, and honours AbortSignal", async () => {
    // a chain of 50 directories
    const { service, store } = mapService();
    const p = service.putMultipleStart();
    let prev: Directory = A;
    await p.put(A);
    for (let i = 0; i < 50; i++) {
      const next = makeDirectory({ directories: [makeDirectoryNode("c", directoryDigest(prev), directorySize(prev))] });
      await p.put(next);
      prev = next;
    }
    const root = await p.close();
    store.reads = 0;
    for await (const _ of service.getRecursive(root)) break;
    expect(store.reads).toBe(1);
    const ac = new AbortController();
    let n = 0;
    await expect(async () => {
      for await (const _ of service.getRecursive(root, { signal: ac.signal })) if (++n === 3) ac.abort();
    }).rejects.toThrow(AbortError);
    expect(n).toBe(3);
  });
  it("wide levels are read in bounded batches", async () => {
    const store = new MapStore();
    const service = new StoreDirectoryService(store, { batchSize: 10 });
    const leaves = Array.from({ length: 25 }, (_, i) => makeDirectory({ symlinks: [makeSymlinkNode(`l${i}`, "t")] }));
    const root = makeDirectory({
      directories: leaves.map((l, i) =>
        makeDirectoryNode(`d${String(i).padStart(2, "0")}`, directoryDigest(l), directorySize(l)),
      ),
    });
    const p = service.putMultipleStart();
    for (const l of leaves) await p.put(l);
    await p.put(root);
    await p.close();
    store.reads = 0;
    expect((await collect(service.getRecursive(directoryDigest(root)))).length).toBe(26);
    expect(store.reads).toBe(1 + 3);
  });
  it("Digest keys survive a round trip through the store", async () => {
    const { service } = mapService();
    const d = await service.put(A);
    expect(d).toBeInstanceOf(Digest);
    expect(d.hex).toBe(directoryDigest(A).hex);
  });
});

/** A chain of `n` directories, leaves first: each holds the previous one. */
function chain(n: number): Directory[] {
  const out: Directory[] = [makeDirectory({ symlinks: [makeSymlinkNode("leaf", "t")] })];
  for (let i = 1; i < n; i++) {
    const child = out[i - 1];
    out.push(makeDirectory({ directories: [makeDirectoryNode("d", directoryDigest(child), directorySize(child))] }));
  }
  return out;
}

describe("StoreDirectoryService with a store that takes uploads while open (openUpload)", () => {
  it("streams checked directories in batches before close, and makes them visible only at commit", async () => {
    const store = new StreamingMapStore();
    const service = new StoreDirectoryService(store);
    const dirs = chain(5000);
    const p = service.putMultipleStart();
    for (const d of dirs) await p.put(d);
    await p.put(dirs[0]); // a repeat is not written twice
    expect(store.events).toEqual(["open", "write 2048", "write 2048"]);
    expect(store.map.size).toBe(0);
    expect(await service.get(directoryDigest(dirs[0]))).toBeUndefined();
    expect((await p.close()).hex).toBe(directoryDigest(dirs[4999]).hex);
    expect(store.events).toEqual(["open", "write 2048", "write 2048", "write 904", "commit 5000"]);
    expect(store.map.size).toBe(5000);
  });
  it("a small upload opens the store's upload only at close", async () => {
    const store = new StreamingMapStore();
    const service = new StoreDirectoryService(store);
    await service.put(A);
    expect(store.events).toEqual(["open", "write 1", "commit 1"]);
  });
  it("an upload that fails before its first batch never opens one in the store", async () => {
    const store = new StreamingMapStore();
    const service = new StoreDirectoryService(store);
    await expect(service.put(B)).rejects.toThrow(ClosureError);
    expect(store.events).toEqual([]);
  });
  it("a bad directory after rows were written aborts the store's upload once; nothing is visible", async () => {
    const store = new StreamingMapStore();
    const service = new StoreDirectoryService(store);
    const p = service.putMultipleStart();
    for (const d of chain(3000)) await p.put(d);
    await expect(p.put(B)).rejects.toThrow(ClosureError);
    await expect(p.close()).rejects.toThrow(ClosureError);
    await p.abort();
    expect(store.events).toEqual(["open", "write 2048", "abort"]);
    expect(store.map.size).toBe(0);
  });
  it("an upload that is not connected fails at close and aborts the store's upload", async () => {
    const store = new StreamingMapStore();
    const service = new StoreDirectoryService(store);
    const p = service.putMultipleStart();
    for (const d of chain(2100)) await p.put(d);
    await p.put(A);
    await expect(p.close()).rejects.toThrow(/not connected/);
    expect(store.events).toEqual(["open", "write 2048", "abort"]);
    expect(store.map.size).toBe(0);
  });
  it("abort() and a cancelled signal abort the store's upload", async () => {
    const store = new StreamingMapStore();
    const service = new StoreDirectoryService(store);
    const p = service.putMultipleStart();
    for (const d of chain(2048)) await p.put(d);
    await p.abort();
    await p.abort();
    expect(store.events).toEqual(["open", "write 2048", "abort"]);

    store.events.length = 0;
    const ac = new AbortController();
    const q = service.putMultipleStart({ signal: ac.signal });
    for (const d of chain(2048)) await q.put(d);
    ac.abort();
    await expect(q.close()).rejects.toThrow(AbortError);
    expect(store.events).toEqual(["open", "write 2048", "abort"]);
    expect(store.map.size).toBe(0);
  });
  it("an engine failure while writing is a BackendError at put, and aborts the store's upload", async () => {
    const store = new StreamingMapStore();
    const service = new StoreDirectoryService(store);
    store.failWrites = true;
    const p = service.putMultipleStart();
    const dirs = chain(2048);
    for (const d of dirs.slice(0, -1)) await p.put(d);
    await expect(p.put(dirs[2047])).rejects.toThrow(BackendError);
    await expect(p.put(dirs[2047])).rejects.toThrow(/disk on fire/);
    expect(store.events).toEqual(["open", "write 2048", "abort"]);
  });
  it("puts that are not awaited still reach the store one write at a time, and commit comes after the last", async () => {
    const store = new StreamingMapStore();
    let writing = 0;
    let overlapped = false;
    const openUpload = store.openUpload.bind(store);
    store.openUpload = () => {
      const upload = openUpload();
      return {
        ...upload,
        write: async (entries) => {
          overlapped ||= writing > 0;
          writing++;
          await new Promise((r) => setTimeout(r, 5));
          await upload.write(entries);
          writing--;
        },
      };
    };
    const service = new StoreDirectoryService(store);
    const p = service.putMultipleStart();
    const dirs = chain(5000);
    const puts = dirs.map((d) => p.put(d));
    const root = p.close();
    await Promise.all(puts);
    expect((await root).hex).toBe(directoryDigest(dirs[4999]).hex);
    expect(overlapped).toBe(false);
    expect(store.events).toEqual(["open", "write 2048", "write 2048", "write 904", "commit 5000"]);
  });
});
