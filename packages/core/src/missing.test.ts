/** missingTopDown: one `has` per level, nothing asked below a stored directory. */
import { describe, expect, it } from "vitest";
import { Digest } from "./digest.js";
import { missingTopDown } from "./missing.js";
import { directoryDigest } from "./canonical.js";
import { type Directory, directorySize, makeDirectory, makeDirectoryNode, makeFileNode } from "./model.js";

const file = (name: string) => makeFileNode(name, Digest.of(new TextEncoder().encode(name)), name.length);
const dirOf = (children: Record<string, Directory>, files: string[] = []) =>
  makeDirectory({
    directories: Object.entries(children).map(([n, d]) => makeDirectoryNode(n, directoryDigest(d), directorySize(d))),
    files: files.map(file),
  });

describe("missingTopDown", () => {
  // root → { a → { a1, a2 }, b → { b1 } }: the store holds a (and so a1, a2), lacks root, b, b1.
  const a1 = dirOf({}, ["a1"]);
  const a2 = dirOf({}, ["a2"]);
  const b1 = dirOf({}, ["b1"]);
  const a = dirOf({ a1, a2 });
  const b = dirOf({ b1 });
  const root = dirOf({ a, b });
  const all = [a1, a2, b1, a, b, root];
  const byHex = new Map(all.map((d) => [directoryDigest(d).hex, d]));
  const childrenOf = (d: Digest) => byHex.get(d.hex)!.directories.map((c) => c.digest);

  it("asks level by level, never below a stored directory", async () => {
    const stored = new Set([a, a1, a2].map((d) => directoryDigest(d).hex));
    const asked: string[][] = [];
    const store = {
      get: async () => undefined,
      has: async (digests: readonly Digest[]) => {
        asked.push(digests.map((d) => d.hex));
        return digests.map((d) => stored.has(d.hex));
      },
    };
    const missing = await missingTopDown(store, directoryDigest(root), childrenOf);
    expect([...missing].sort()).toEqual([root, b, b1].map((d) => directoryDigest(d).hex).sort());
    expect(asked).toEqual([
      [directoryDigest(root).hex],
      [directoryDigest(a).hex, directoryDigest(b).hex],
      [directoryDigest(b1).hex],
    ]);
  });

  it("a stored root: one question, nothing missing", async () => {
    let calls = 0;
    const store = { get: async () => undefined, has: async (d: readonly Digest[]) => (calls++, d.map(() => true)) };
    expect((await missingTopDown(store, directoryDigest(root), childrenOf)).size).toBe(0);
    expect(calls).toBe(1);
  });
});
