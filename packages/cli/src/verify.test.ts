import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Digest,
  directoryDigest,
  directorySize,
  encodeDirectory,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
} from "@castore-ts/core";
import { LmdbDirectoryService } from "@castore-ts/backend-lmdb";
import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import { runCastore } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";
import { importTree } from "./importer.js";
import { verifyRoots, verifyStore, type Problem } from "./verify.js";

let dir: string;
let root: Digest;
const storeUrl = () => `lmdb://${join(dir, "store")}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "castore-verify-"));
  const tree = join(dir, "tree");
  mkdirSync(join(tree, "x", "y", "z"), { recursive: true });
  mkdirSync(join(tree, "w"));
  writeFileSync(join(tree, "x", "y", "f"), "f");
  writeFileSync(join(tree, "w", "g"), "g");
  const service = await LmdbDirectoryService.open(join(dir, "store"));
  root = (await importTree(service, tree)).digest;
  await service.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function withStore<T>(fn: (s: LmdbDirectoryService) => Promise<T>): Promise<T> {
  const s = await LmdbDirectoryService.open(join(dir, "store"));
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

async function childDigest(s: LmdbDirectoryService, parent: Digest, name: string): Promise<Digest> {
  const d = await s.get(parent);
  return Digest.fromBytes(d!.directories.find((n) => Buffer.from(n.name).toString() === name)!.digest);
}

describe("verify", () => {
  it("a healthy store verifies clean, by roots and as a whole; the CLI exits 0", async () => {
    await withStore(async (s) => {
      const problems: Problem[] = [];
      expect(await verifyRoots(s, [root], { onProblem: (p) => problems.push(p) })).toEqual({
        directories: 5,
        problems: 0,
      });
      expect(await verifyStore(s, { onProblem: (p) => problems.push(p) })).toEqual({ directories: 5, problems: 0 });
      expect(problems).toEqual([]);
    });
    const r = await runCastore(CASTORE_CLI, ["verify", storeUrl(), root.hex, "--no-progress"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/5 directories checked, 0 problems/);
  });

  it("reports corrupt and missing directories with digest and path, and exits 1", async () => {
    let y: Digest, w: Digest;
    await withStore(async (s) => {
      const x = await childDigest(s, root, "x");
      y = await childDigest(s, x, "y");
      w = await childDigest(s, root, "w");
      // corrupt x/y: other bytes under its key; lose w entirely
      await s.store.directories.put(y.bytes, encodeDirectory(fixtures.DIRECTORY_B));
      await s.store.directories.remove(w.bytes);
    });
    const r = await runCastore(CASTORE_CLI, ["verify", storeUrl(), root.hex, "--no-progress"]);
    expect(r.code).toBe(1);
    const out = r.stdout.toString();
    expect(out).toContain(`corrupt ${y!.hex} at /x/y: directory ${y!.hex} is corrupt`);
    expect(out).toMatch(new RegExp(`missing ${w!.hex} at /w: not stored \\(child of ${root.hex}\\)`));
    expect(r.stderr).toMatch(/2 problems/);

    const whole = await runCastore(CASTORE_CLI, ["verify", storeUrl(), "--no-progress"]);
    expect(whole.code).toBe(1);
    expect(whole.stdout.toString()).toContain(`missing ${w!.hex}: not stored, but ${root.hex} refers to it as w`);
    expect(whole.stdout.toString()).toContain(`corrupt ${y!.hex}`);
  });

  it("checks the size every parent declares for a shared child, not only the first parent's", async () => {
    // A diamond: root → p1 → shared, root → p2 → shared, one parent declaring a legacy size:
    // a snix-compat store takes it, verify's default (exact) reports it.
    const shared = fixtures.DIRECTORY_B; // size 1: one directory node (snix-compat accepts 1..2)
    const dShared = directoryDigest(shared);
    expect(directorySize(shared)).toBe(1n);
    for (const wrongParent of ["p1", "p2"]) {
      const service = new MemoryDirectoryService({ sizeCheck: "snix-compat" });
      const parent = (name: string) =>
        makeDirectory({ directories: [makeDirectoryNode("s", dShared, name === wrongParent ? 2 : 1)] });
      const [p1, p2] = [parent("p1"), parent("p2")];
      const rootDir = makeDirectory({
        directories: [
          makeDirectoryNode("p1", directoryDigest(p1), directorySize(p1)),
          makeDirectoryNode("p2", directoryDigest(p2), directorySize(p2)),
        ],
      });
      const upload = service.putMultipleStart();
      for (const d of [fixtures.DIRECTORY_A, shared, p1, p2, rootDir]) await upload.put(d);
      const rootDigest = await upload.close();
      const problems: Problem[] = [];
      const result = await verifyRoots(service, [rootDigest], { onProblem: (p) => problems.push(p) });
      expect(result).toEqual({ directories: 5, problems: 1 });
      expect(problems).toEqual([
        {
          kind: "size-mismatch",
          digest: dShared.hex,
          path: `${wrongParent}/s`,
          message: `declared size 2 in ${directoryDigest(wrongParent === "p1" ? p1 : p2).hex}, actual 1`,
        },
      ]);
      await service.close();
    }
  });

  it("--size-check: exact reports each legacy size of a legacy tree, snix-compat accepts them (roots and whole store)", async () => {
    const service = new MemoryDirectoryService({ sizeCheck: "snix-compat" });
    try {
      const upload = service.putMultipleStart();
      const legacy = [
        fixtures.DIRECTORY_WITH_KEEP,
        fixtures.DIRECTORY_COMPLICATED_LEGACY,
        fixtures.DIRECTORY_NESTED_LEGACY,
      ];
      for (const d of legacy) await upload.put(d);
      const root = await upload.close();
      const complicated = directoryDigest(fixtures.DIRECTORY_COMPLICATED_LEGACY);
      const problems: Problem[] = [];
      const onProblem = (p: Problem) => problems.push(p);
      expect(await verifyRoots(service, [root], { onProblem })).toEqual({ directories: 3, problems: 2 });
      expect(problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
        `inner: declared size 8 in ${root.hex}, actual 5`,
        `inner/keep: declared size 2 in ${complicated.hex}, actual 1`,
      ]);
      expect(await verifyStore(service, { onProblem: () => {} })).toEqual({ directories: 3, problems: 2 });
      const compat = { sizeCheck: "snix-compat" as const, onProblem };
      problems.length = 0;
      expect(await verifyRoots(service, [root], compat)).toEqual({ directories: 3, problems: 0 });
      expect(await verifyStore(service, compat)).toEqual({ directories: 3, problems: 0 });
    } finally {
      await service.close();
    }
  });

  it("castore verify --size-check: exact (default) exits 1 on legacy sizes, snix-compat exits 0, at-least is refused", async () => {
    const path = join(dir, "legacy-store");
    const s = await LmdbDirectoryService.open(path, { sizeCheck: "snix-compat" });
    try {
      const upload = s.putMultipleStart();
      for (const d of [
        fixtures.DIRECTORY_WITH_KEEP,
        fixtures.DIRECTORY_COMPLICATED_LEGACY,
        fixtures.DIRECTORY_NESTED_LEGACY,
      ])
        await upload.put(d);
      await upload.close();
    } finally {
      await s.close();
    }
    const url = `lmdb://${path}`;
    const exact = await runCastore(CASTORE_CLI, ["verify", url, "--no-progress"]);
    expect(exact.code).toBe(1);
    expect(exact.stdout.toString()).toMatch(/^size-mismatch .*: declared size 8 as inner in .*, actual 5$/m);
    const compat = await runCastore(CASTORE_CLI, ["verify", url, "--no-progress", "--size-check", "snix-compat"]);
    expect(compat.code, compat.stdout.toString()).toBe(0);
    const old = await runCastore(CASTORE_CLI, ["verify", url, "--size-check", "at-least"]);
    expect(old.code).not.toBe(0);
    expect(old.stderr.toString()).toMatch(
      /'--size-check <mode>' argument 'at-least' is invalid\. expected exact or snix-compat/,
    );
  });

  it("whole-store verify reports a stored key that is not a digest and goes on to check the rest", async () => {
    const path = join(dir, "bad-key-store");
    const s = await LmdbDirectoryService.open(path);
    const b = directoryDigest(fixtures.DIRECTORY_B);
    try {
      const upload = s.putMultipleStart();
      for (const d of [fixtures.DIRECTORY_A, fixtures.DIRECTORY_B]) await upload.put(d);
      await upload.close();
      // A 31-byte key sorts before every digest; B corrupt after it must still be found.
      s.store.directories.putSync(new Uint8Array(31), encodeDirectory(fixtures.DIRECTORY_A));
      s.store.directories.putSync(b.bytes, encodeDirectory(fixtures.DIRECTORY_C));
      const problems: Problem[] = [];
      expect(await verifyStore(s, { onProblem: (p) => problems.push(p) })).toEqual({ directories: 2, problems: 2 });
      expect(problems.map((p) => `${p.kind} ${p.digest}`).sort()).toEqual([
        `corrupt ${b.hex}`,
        `invalid-key ${"00".repeat(31)}`,
      ]);
    } finally {
      await s.close();
    }
    const r = await runCastore(CASTORE_CLI, ["verify", `lmdb://${path}`, "--no-progress"]);
    expect(r.code).toBe(1);
    expect(r.stdout.toString()).toContain(`invalid-key ${"00".repeat(31)}: stored key of 31 bytes is not a digest`);
    expect(r.stdout.toString()).toContain(`corrupt ${b.hex}`);
    expect(r.stderr).toMatch(/2 directories checked, 2 problems/);
  });

  it("verify --repair FROM replaces corrupt directories with correct bytes from another store; verify then passes", async () => {
    const damaged = join(dir, "repair-damaged");
    const good = join(dir, "repair-good");
    const tree = join(dir, "tree");
    // Two stores holding the same tree, one of them damaged behind its back.
    let y: Digest, x: Digest;
    for (const path of [damaged, good]) {
      const s = await LmdbDirectoryService.open(path);
      try {
        expect((await importTree(s, tree)).digest.hex).toBe(root.hex);
        x = await childDigest(s, root, "x");
        y = await childDigest(s, x, "y");
      } finally {
        await s.close();
      }
    }
    const s = await LmdbDirectoryService.open(damaged);
    try {
      s.store.directories.putSync(y!.bytes, encodeDirectory(fixtures.DIRECTORY_B)); // other valid bytes
      s.store.directories.putSync(x!.bytes, Uint8Array.from([0xff, 0xff, 0xff])); // not a directory at all
    } finally {
      await s.close();
    }
    // Importing the tree again does not repair it: stored digests are skipped.
    expect(
      (await runCastore(CASTORE_CLI, ["import", "--store", `lmdb://${damaged}`, tree, "--no-progress"])).code,
    ).toBe(0);

    const before = await runCastore(CASTORE_CLI, ["verify", `lmdb://${damaged}`, "--no-progress"]);
    expect(before.code).toBe(1);
    expect(before.stdout.toString()).toContain(`corrupt ${x!.hex}`);
    expect(before.stdout.toString()).toContain(`corrupt ${y!.hex}`);

    const repair = await runCastore(CASTORE_CLI, [
      "verify",
      `lmdb://${damaged}`,
      "--repair",
      `lmdb://${good}`,
      "--no-progress",
    ]);
    expect(repair.code, repair.stderr).toBe(0);
    expect(repair.stdout.toString()).toContain(`repaired ${x!.hex}`);
    expect(repair.stdout.toString()).toContain(`repaired ${y!.hex}`);
    expect(repair.stderr).toMatch(
      /repaired 2 directories from lmdb:\/\/.*; verifying again\n.*5 directories checked, 0 problems/,
    );

    const after = await runCastore(CASTORE_CLI, ["verify", `lmdb://${damaged}`, root.hex, "--no-progress"]);
    expect(after.code, after.stdout.toString()).toBe(0);
    expect(after.stderr).toMatch(/5 directories checked, 0 problems/);
  });

  it("verify --repair on a store that cannot replace stored bytes is refused before anything is read", async () => {
    const r = await runCastore(CASTORE_CLI, [
      "verify",
      "grpc+http://127.0.0.1:1",
      root.hex,
      "--repair",
      storeUrl(),
      "--no-progress",
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot be repaired: its backend cannot replace stored bytes/);
  });

  it("a store that cannot list needs roots", async () => {
    const r = await runCastore(CASTORE_CLI, ["verify", "grpc+http://127.0.0.1:1", "--no-progress"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot list .* give the root digests/);
  });
});
