/** Partial uploads (spec §3.6) in core: the validator's external children and StoreDirectoryService's checks. */
import { describe, expect, it } from "vitest";
import { ClosureValidator } from "./closure.js";
import { Digest } from "./digest.js";
import { ClosureError } from "./errors.js";
import { type Directory, directorySize, makeDirectory, makeDirectoryNode, makeFileNode } from "./model.js";
import { directoryDigest } from "./canonical.js";
import { supportsPartialUploads } from "./service.js";
import { MapStore } from "./test-memory-store.js";
import { StoreDirectoryService } from "./store-service.js";
import type { ClosureEntry } from "./closure.js";

const leaf = makeDirectory({ files: [makeFileNode("a.txt", Digest.of(new Uint8Array([1])), 1)] });
const mid = makeDirectory({ directories: [makeDirectoryNode("leaf", directoryDigest(leaf), directorySize(leaf))] });
const parentOf = (child: Directory, size = directorySize(child), name = "stored") =>
  makeDirectory({ directories: [makeDirectoryNode(name, directoryDigest(child), size)] });

/** A MapStore that takes partial uploads and records what its commits were told. */
class PartialMapStore extends MapStore {
  readonly partialUploads = true;
  readonly externals: string[][] = [];
  override async putClosure(entries: ClosureEntry[], _signal?: AbortSignal, external: readonly Digest[] = []) {
    const missing = external.find((d) => !this.map.has(d.hex));
    if (missing) throw new ClosureError(`${missing.hex} is gone`);
    this.externals.push(external.map((d) => d.hex));
    await super.putClosure(entries);
  }
}

async function uploadTo(service: StoreDirectoryService, directories: Directory[], partial: boolean) {
  const putter = service.putMultipleStart({ partial });
  for (const d of directories) await putter.put(d);
  return putter.close();
}

describe("ClosureValidator, partial", () => {
  it("records each child it was not sent once, with every size declared for it", () => {
    const v = new ClosureValidator({ partial: true });
    const twice = makeDirectory({
      directories: [
        makeDirectoryNode("a", directoryDigest(mid), 2n),
        makeDirectoryNode("b", directoryDigest(mid), 3n),
        makeDirectoryNode("c", directoryDigest(mid), 2n),
      ],
    });
    v.add(twice);
    const closure = v.finish();
    expect(closure.entries.map((e) => e.digest.hex)).toEqual([directoryDigest(twice).hex]);
    expect(closure.external).toHaveLength(1);
    expect(closure.external[0].digest.hex).toBe(directoryDigest(mid).hex);
    expect(closure.external[0].declaredSizes).toEqual([2n, 3n]);
    expect(closure.external[0].referredBy).toMatch(/directories\[0\] "?a"?/);
  });

  it("without partial, a child not sent is a ClosureError", () => {
    const v = new ClosureValidator();
    expect(() => v.add(parentOf(mid))).toThrow(/which was not sent earlier in this upload$/);
  });
});

describe("StoreDirectoryService, partial uploads", () => {
  it("stores a parent of a stored child, telling the store which children it relies on", async () => {
    const store = new PartialMapStore();
    const service = new StoreDirectoryService(store);
    expect(await supportsPartialUploads(service)).toBe(true);
    await uploadTo(service, [leaf, mid], false);
    const top = parentOf(mid);
    expect((await uploadTo(service, [top], true)).hex).toBe(directoryDigest(top).hex);
    expect(store.externals.at(-1)).toEqual([directoryDigest(mid).hex]);
  });

  it("refuses an absent child and a wrong size before the store commits anything", async () => {
    const store = new PartialMapStore();
    const service = new StoreDirectoryService(store);
    await expect(uploadTo(service, [parentOf(mid)], true)).rejects.toThrow(
      /refers to [0-9a-f]{64}, which was not sent in this partial upload and is not stored/,
    );
    await uploadTo(service, [leaf, mid], false);
    await expect(uploadTo(service, [parentOf(mid, directorySize(mid) + 1n)], true)).rejects.toThrow(ClosureError);
    expect(store.externals).toEqual([[]]); // only the whole-closure upload reached putClosure
  });

  it("fails when the store finds the child gone at commit (a collection between check and commit)", async () => {
    const store = new PartialMapStore();
    const service = new StoreDirectoryService(store);
    await uploadTo(service, [leaf, mid], false);
    const realGetMany = store.getMany.bind(store);
    store.getMany = async (digests) => {
      const found = await realGetMany(digests);
      store.map.delete(directoryDigest(mid).hex); // collected right after the check read it
      return found;
    };
    const top = parentOf(mid);
    await expect(uploadTo(service, [top], true)).rejects.toThrow(/is gone/);
    expect(store.map.has(directoryDigest(top).hex)).toBe(false);
  });

  it("a store without partialUploads gets the upload made whole: the stored closure read back and committed with it", async () => {
    const store = new MapStore();
    const committed: string[][] = [];
    const putClosure = store.putClosure.bind(store);
    store.putClosure = async (entries) => {
      committed.push(entries.map((e) => e.digest.hex));
      return putClosure(entries);
    };
    const service = new StoreDirectoryService(store);
    expect(await supportsPartialUploads(service)).toBe(true);
    await uploadTo(service, [leaf, mid], false);
    const top = parentOf(mid);
    expect((await uploadTo(service, [top], true)).hex).toBe(directoryDigest(top).hex);
    expect(committed.at(-1)).toEqual([leaf, mid, top].map((d) => directoryDigest(d).hex));
    await expect(uploadTo(service, [parentOf(mid, directorySize(mid) + 1n)], true)).rejects.toThrow(
      /declares size \d+ for directories\[0\] "?stored"?/,
    );
    await expect(uploadTo(service, [parentOf(parentOf(top))], true)).rejects.toThrow(/is not stored/);
    expect(committed).toHaveLength(2);
  });
});
