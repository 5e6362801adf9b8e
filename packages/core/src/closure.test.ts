import { describe, expect, it } from "vitest";
import { ClosureValidator, RootToLeavesChecker, decodeStoredDirectory } from "./closure.js";
import { directoryDigest, encodeDirectory } from "./canonical.js";
import { ClosureError, CorruptionError, ValidationError } from "./errors.js";
import {
  DIRECTORY_A as A,
  DIRECTORY_B as B,
  DIRECTORY_BROKEN as BROKEN,
  DIRECTORY_C as C,
  DIRECTORY_D as D,
} from "./fixtures.js";
import * as fixtures from "./fixtures.js";
import { makeDirectory, makeDirectoryNode, makeFileNode, type Directory } from "./model.js";
import type { SizeCheck } from "./size-check.js";

function upload(dirs: Directory[], sizeCheck?: SizeCheck) {
  const v = new ClosureValidator({ sizeCheck });
  for (const d of dirs) v.add(d);
  return v.finish();
}

describe("ClosureValidator (spec §7 items 3–11 at the validator level)", () => {
  it("3/4: [B] alone fails: its child was not sent in this upload", () => {
    expect(() => upload([B])).toThrow(ClosureError);
    expect(() => upload([B])).toThrow(
      /refers to af1349b9.* \(directories\[0\] "a"\), which was not sent earlier in this upload/,
    );
  });
  it("5: [A, B] → root B, leaves to root", () => {
    const c = upload([A, B]);
    expect(c.root.equals(directoryDigest(B))).toBe(true);
    expect(c.entries.map((e) => e.digest.hex)).toEqual([directoryDigest(A).hex, directoryDigest(B).hex]);
    expect(c.entries[1].bytes).toEqual(encodeDirectory(B));
  });
  it("6: [B, A] fails at B", () => {
    const v = new ClosureValidator();
    expect(() => v.add(B)).toThrow(ClosureError);
  });
  it("7: [A, A, C] → duplicates ignored, root C", () => {
    const v = new ClosureValidator();
    expect(v.add(A)?.digest.hex).toBe(directoryDigest(A).hex);
    expect(v.add(A)).toBeUndefined();
    v.add(C);
    const c = v.finish();
    expect(c.root.equals(directoryDigest(C))).toBe(true);
    expect(c.entries).toHaveLength(2);
  });
  it("8: [A, B, D] → root D", () => {
    expect(upload([A, B, D]).root.equals(directoryDigest(D))).toBe(true);
  });
  it("9: [A, C, B] is not connected", () => {
    expect(() => upload([A, C, B])).toThrow(/not connected: 2 directories are referred to by no other/);
  });
  it("10: [A, BROKEN] fails on the declared size in both modes (42 is neither 0 nor within 0..2·0+0)", () => {
    expect(() => upload([A, BROKEN])).toThrow(/declares size 42 for directories\[0\] "foo".* but its size is 0/);
    expect(() => upload([A, BROKEN], "snix-compat")).toThrow(/declares size 42 .* but its size is 0/);
  });
  it("10: undersized declarations fail in both modes", () => {
    const under = makeDirectory({ directories: [makeDirectoryNode("b", directoryDigest(B), 0)] });
    expect(() => upload([A, B, under])).toThrow(ClosureError);
    expect(() => upload([A, B, under], "snix-compat")).toThrow(
      /declares size 0 .* its size is 1 \(snix-compat accepts 1\.\.2\)/,
    );
  });
  it("snix-compat accepts the legacy tree (2·n + s at every level, s from the child's declared sizes); exact rejects it", () => {
    const legacy = [
      fixtures.DIRECTORY_WITH_KEEP,
      fixtures.DIRECTORY_COMPLICATED_LEGACY,
      fixtures.DIRECTORY_NESTED_LEGACY,
    ];
    expect(upload(legacy, "snix-compat").root.equals(directoryDigest(fixtures.DIRECTORY_NESTED_LEGACY))).toBe(true);
    expect(() => upload(legacy)).toThrow(/declares size 2 for directories\[0\] "keep" .* but its size is 1$/);
    // NESTED_LEGACY's 8 is only in range because COMPLICATED_LEGACY's own declared 2 counts in s.
    const overLegacy = makeDirectory({
      directories: [makeDirectoryNode("inner", directoryDigest(fixtures.DIRECTORY_COMPLICATED_LEGACY), 9)],
    });
    expect(() => upload([legacy[0], legacy[1], overLegacy], "snix-compat")).toThrow(
      /declares size 9 .* its size is 5 \(snix-compat accepts 5\.\.8\)/,
    );
  });
  it("the canonical tree passes both modes; a size above 2·n + s fails both", () => {
    const canonical = [fixtures.DIRECTORY_WITH_KEEP, fixtures.DIRECTORY_COMPLICATED, fixtures.DIRECTORY_NESTED];
    for (const mode of ["exact", "snix-compat"] as const) {
      expect(upload(canonical, mode).root.equals(directoryDigest(fixtures.DIRECTORY_NESTED))).toBe(true);
      expect(() => upload([fixtures.DIRECTORY_WITH_KEEP, fixtures.DIRECTORY_COMPLICATED_OVERSIZED], mode)).toThrow(
        /declares size 3 for directories\[0\] "keep"/,
      );
    }
  });
  it("entries keep the canonical bytes and decode back to the directory", () => {
    const c = upload([A, B, D]);
    expect(c.entries.map((e) => Buffer.from(e.bytes))).toEqual([A, B, D].map((d) => Buffer.from(encodeDirectory(d))));
    expect(c.entries.map((e) => e.directory)).toEqual([A, B, D]);
  });
  it("takes bytes received with a directory as its canonical encoding, copied", () => {
    const v = new ClosureValidator();
    const frame = Uint8Array.from([0xff, ...encodeDirectory(D), 0xff]);
    v.add(A);
    v.add(B);
    v.add(D, frame.subarray(1, frame.length - 1));
    frame.fill(0);
    const c = v.finish();
    expect(c.root.equals(directoryDigest(D))).toBe(true);
    expect(Buffer.from(c.entries[2].bytes)).toEqual(Buffer.from(encodeDirectory(D)));
  });
  it("tells apart directories whose digests share the 30 bits it indexes by", () => {
    // Found by search: these two digests agree in their first 30 bits.
    const [x, y] = ["f10608", "f35812"].map((n) => makeDirectory({ files: [makeFileNode(n, new Uint8Array(32), 1)] }));
    const [dx, dy] = [directoryDigest(x), directoryDigest(y)];
    expect(dx.bytes.subarray(0, 3)).toEqual(dy.bytes.subarray(0, 3));
    expect(dx.bytes[3] & 0x3f).toBe(dy.bytes[3] & 0x3f);
    const parent = (...ds: Directory[]) =>
      makeDirectory({ directories: ds.map((d, i) => makeDirectoryNode(`d${i}`, directoryDigest(d), 1)) });
    const v = new ClosureValidator();
    expect(v.add(x)).toBeDefined();
    // y is not x: referring to it before it was sent still fails, sending it is no duplicate.
    expect(() => new ClosureValidator().add(parent(y))).toThrow(/which was not sent earlier/);
    expect(v.add(y)).toBeDefined();
    expect(v.add(x)).toBeUndefined();
    expect(v.add(y)).toBeUndefined();
    v.add(parent(x, y));
    expect(v.finish().entries).toHaveLength(3);
  });
  it("11: an empty upload fails", () => {
    expect(() => upload([])).toThrow(/empty upload/);
  });
  it("invalid directories fail with ValidationError naming the digest", () => {
    const bad = makeDirectory({ files: [makeFileNode("a/b", new Uint8Array(32), 0)] });
    expect(() => upload([bad])).toThrow(ValidationError);
    expect(() => upload([bad])).toThrow(
      /^directory [0-9a-f]{64} failed validation: invalid name "a\/b" in files\[0\]: contains '\/'/,
    );
  });
});

describe("RootToLeavesChecker", () => {
  const dB = directoryDigest(B);
  const dD = directoryDigest(D);
  it("accepts BFS order and any other root-to-leaves order", () => {
    for (const order of [
      [D, A, B],
      [D, B, A],
    ]) {
      const c = new RootToLeavesChecker(dD);
      for (const d of order) c.accept(d);
      c.finish();
    }
  });
  it("rejects a child before its parent", () => {
    const c = new RootToLeavesChecker(dB);
    expect(() => c.accept(A)).toThrow(CorruptionError);
  });
  it("rejects a directory sent twice", () => {
    const c = new RootToLeavesChecker(dD);
    c.accept(D);
    c.accept(A);
    expect(() => c.accept(A)).toThrow(/sent twice/);
  });
  it("rejects a premature end", () => {
    const c = new RootToLeavesChecker(dD);
    c.accept(D);
    c.accept(B);
    expect(() => c.finish()).toThrow(/premature end of stream .* still expected 1 directories/);
  });
  it("accepts an empty stream (absent root)", () => {
    new RootToLeavesChecker(dD).finish();
  });
  it("rejects an invalid directory", () => {
    const bad = makeDirectory({ files: [makeFileNode("", new Uint8Array(32), 0)] });
    const c = new RootToLeavesChecker(directoryDigest(bad));
    expect(() => c.accept(bad)).toThrow(/failed validation/);
  });
  describe("acceptStored: a directory its store already hashed and validated; only the closure is checked", () => {
    const stored = (c: RootToLeavesChecker, d: Directory) => c.acceptStored(directoryDigest(d), d);
    it("accepts a whole closure root to leaves", () => {
      const c = new RootToLeavesChecker(dD);
      for (const d of [D, B, A]) stored(c, d);
      c.finish();
    });
    it("rejects a root that is not the one asked for, a child before its parent, a repeat and an early end", () => {
      expect(() => stored(new RootToLeavesChecker(dB), A)).toThrow(/not referred to/);
      const twice = new RootToLeavesChecker(dD);
      stored(twice, D);
      stored(twice, A);
      expect(() => stored(twice, A)).toThrow(/sent twice/);
      const early = new RootToLeavesChecker(dD);
      stored(early, D);
      stored(early, B);
      expect(() => early.finish()).toThrow(/premature end of stream .* still expected 1 directories/);
    });
    it("still checks declared sizes (exact rejects a legacy one)", () => {
      const legacy = [
        fixtures.DIRECTORY_NESTED_LEGACY,
        fixtures.DIRECTORY_COMPLICATED_LEGACY,
        fixtures.DIRECTORY_WITH_KEEP,
      ];
      const c = new RootToLeavesChecker(directoryDigest(legacy[0]));
      expect(() => legacy.forEach((d) => stored(c, d))).toThrow(/declares size 8 for directories\[0\] "inner"/);
    });
  });
  describe("declared sizes (spec §1.1), re-checked on read", () => {
    const legacy = [
      fixtures.DIRECTORY_NESTED_LEGACY,
      fixtures.DIRECTORY_COMPLICATED_LEGACY,
      fixtures.DIRECTORY_WITH_KEEP,
    ];
    const receive = (dirs: Directory[], opts?: ConstructorParameters<typeof RootToLeavesChecker>[1]) => {
      const c = new RootToLeavesChecker(directoryDigest(dirs[0]), opts);
      for (const d of dirs) c.accept(d);
      c.finish();
    };
    it("exact (the default) rejects a legacy size as corruption, naming parent, node and child", () => {
      expect(() => receive(legacy)).toThrow(CorruptionError);
      expect(() => receive(legacy)).toThrow(
        new RegExp(
          `directory ${directoryDigest(fixtures.DIRECTORY_NESTED_LEGACY).hex} declares size 8 for directories\\[0\\] "inner" ` +
            `\\(${directoryDigest(fixtures.DIRECTORY_COMPLICATED_LEGACY).hex}\\), but its size is 5$`,
        ),
      );
    });
    it("snix-compat accepts the legacy tree and reports each legacy size", () => {
      const seen: string[] = [];
      receive(legacy, { sizeCheck: "snix-compat", onLegacySize: (l) => seen.push(`${l.name}:${l.declared}`) });
      expect(seen).toEqual(['"inner":8', '"keep":2']);
    });
    it("both modes reject a size above 2·n + s, and one below n + s", () => {
      const over = [fixtures.DIRECTORY_COMPLICATED_OVERSIZED, fixtures.DIRECTORY_WITH_KEEP];
      for (const sizeCheck of ["exact", "snix-compat"] as const) {
        expect(() => receive(over, { sizeCheck })).toThrow(/declares size 3 for directories\[0\] "keep"/);
      }
    });
    it("checks a reference to a directory received earlier (a DAG referring to it again from deeper)", () => {
      // root → {x → WITH_KEEP (1), y → P}, P → {k → WITH_KEEP declaring 7}: WITH_KEEP arrives before P.
      const keep = directoryDigest(fixtures.DIRECTORY_WITH_KEEP);
      const p = makeDirectory({ directories: [makeDirectoryNode("k", keep, 7)] });
      const root = makeDirectory({
        directories: [makeDirectoryNode("x", keep, 1), makeDirectoryNode("y", directoryDigest(p), 8)],
      });
      const c = new RootToLeavesChecker(directoryDigest(root), { sizeCheck: "snix-compat" });
      c.accept(root);
      c.accept(fixtures.DIRECTORY_WITH_KEEP);
      expect(() => c.accept(p)).toThrow(/declares size 7 for directories\[0\] "k" .*\(snix-compat accepts 1\.\.2/);
    });
  });
});

describe("decodeStoredDirectory", () => {
  it("returns the directory when the bytes hash to the digest", () => {
    expect(decodeStoredDirectory(directoryDigest(B), encodeDirectory(B))).toEqual(B);
  });
  it("reports bytes under the wrong digest as corruption, naming both digests", () => {
    expect(() => decodeStoredDirectory(directoryDigest(B), encodeDirectory(C))).toThrow(
      new RegExp(`directory ${directoryDigest(B).hex} is corrupt: stored bytes hash to ${directoryDigest(C).hex}`),
    );
  });
});

describe("ClosureValidator: sizes past 2^53 (kept as bigints beside the numbers)", () => {
  // Only a partial upload can carry one: an external child declared that large (the store checks it).
  const huge = 2n ** 60n + 5n;
  const external = directoryDigest(makeDirectory({ files: [makeFileNode("elsewhere", new Uint8Array(32), 1)] }));
  const middle = makeDirectory({ directories: [makeDirectoryNode("big", external, huge)] });
  const top = (declared: bigint) =>
    makeDirectory({ directories: [makeDirectoryNode("middle", directoryDigest(middle), declared)] });

  it("accepts the exact size of a directory whose size is past 2^53, and refuses one off by one either way", () => {
    for (const declared of [huge + 1n, huge, huge + 2n]) {
      const v = new ClosureValidator({ partial: true });
      v.add(middle);
      if (declared === huge + 1n) {
        v.add(top(declared));
        const closure = v.finish();
        expect(closure.entries).toHaveLength(2);
        expect(closure.external.map((e) => e.digest.hex)).toEqual([external.hex]);
      } else {
        expect(() => v.add(top(declared)), `declared ${declared}`).toThrow(ClosureError);
      }
    }
  });
});
