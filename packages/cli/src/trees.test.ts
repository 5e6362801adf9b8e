/**
 * Whole trees in and out (issue 18's first commands): `castore import`
 * stores file contents, `castore export` writes the same tree back,
 * `castore cat` reads one file; all through real processes on an lmdb store.
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCastore } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

let dir: string;
let tree: string;
let store: string;
let root: string;
const NON_UTF8 = Buffer.from([0x6e, 0xff, 0xfe]);
/** A file over several chunks (snix's chunks are 128–512 KiB). */
const big = Buffer.alloc(3 * 1024 * 1024 + 7);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "castore-trees-"));
  tree = join(dir, "tree");
  mkdirSync(join(tree, "a", "b"), { recursive: true });
  mkdirSync(join(tree, "empty-dir"));
  // the same (empty) directory again deeper down: getRecursive sends it once, before this parent
  mkdirSync(join(tree, "a", "b", "also-empty"));
  writeFileSync(join(tree, "a", "hello.txt"), "hello\n");
  writeFileSync(join(tree, "empty"), "");
  writeFileSync(join(tree, "run.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(join(tree, "run.sh"), 0o755);
  symlinkSync("a/hello.txt", join(tree, "link"));
  writeFileSync(Buffer.concat([Buffer.from(join(tree, "a", "b")), Buffer.from("/"), NON_UTF8]), "binary name");
  for (let i = 0; i < big.length; i++) big[i] = (i * 2654435761) >>> 24;
  writeFileSync(join(tree, "a", "big.bin"), big);
  store = `lmdb://${join(dir, "store")}`;
  const r = await runCastore(CASTORE_CLI, ["import", tree, "--store", store, "--no-progress"]);
  expect(r.code, r.stderr).toBe(0);
  root = r.stdout.toString().trim();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("import, export, cat", () => {
  it("export writes back the same tree: contents, executable bit, symlink, empty file and directory, byte names", async () => {
    const out = join(dir, "out");
    const r = await runCastore(CASTORE_CLI, ["export", root, out, "--store", store]);
    expect(r.code, r.stderr).toBe(0);
    // diff -r compares contents and names as bytes; symlinks by their targets with --no-dereference
    execFileSync("diff", ["-r", "--no-dereference", tree, out]);
    expect(lstatSync(join(out, "run.sh")).mode & 0o111).not.toBe(0);
    expect(lstatSync(join(out, "a", "hello.txt")).mode & 0o111).toBe(0);
    expect(readlinkSync(join(out, "link"))).toBe("a/hello.txt");
    expect(readdirSync(join(out, "empty-dir"))).toEqual([]);
    expect(readdirSync(Buffer.from(join(out, "a", "b")), { encoding: "buffer" })).toEqual([
      Buffer.from("also-empty"),
      NON_UTF8,
    ]);
    // and the export re-imports to the same root
    const again = await runCastore(CASTORE_CLI, ["import", out, "--store", "memory://", "--no-progress"]);
    expect(again.stdout.toString().trim()).toBe(root);
  });

  it("export refuses a DEST that is not empty and leaves it as it was", async () => {
    const busy = join(dir, "busy");
    mkdirSync(busy);
    writeFileSync(join(busy, "keep"), "mine");
    const r = await runCastore(CASTORE_CLI, ["export", root, busy, "--store", store]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.toString()).toMatch(/not empty/);
    expect(readdirSync(busy)).toEqual(["keep"]);
  });

  it("a failed export leaves nothing at DEST, nor a temporary tree beside it", async () => {
    const parent = join(dir, "failed");
    mkdirSync(parent);
    // a store that has the directories but not the blobs: imported with --no-contents
    const bare = `lmdb://${join(dir, "bare")}`;
    const imported = await runCastore(CASTORE_CLI, ["import", tree, "--store", bare, "--no-contents", "--no-progress"]);
    expect(imported.stdout.toString().trim()).toBe(root);
    const r = await runCastore(CASTORE_CLI, ["export", root, join(parent, "dest"), "--store", bare]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.toString()).toMatch(/blob [0-9a-f]{64} is missing from the store/);
    expect(readdirSync(parent)).toEqual([]);
  });

  it("cat writes a file's bytes, by path below a root or by blob digest, and a range of them", async () => {
    const hello = await runCastore(CASTORE_CLI, ["cat", root, "a/hello.txt", "--store", store]);
    expect(hello.code, hello.stderr).toBe(0);
    expect(hello.stdout.toString()).toBe("hello\n");
    const whole = await runCastore(CASTORE_CLI, ["cat", root, "a/big.bin", "--store", store]);
    expect(Buffer.compare(whole.stdout, big)).toBe(0);
    const range = await runCastore(CASTORE_CLI, [
      "cat",
      root,
      "a/big.bin",
      "--range",
      "524280-1048600",
      "--store",
      store,
    ]);
    expect(Buffer.compare(range.stdout, big.subarray(524280, 1048601))).toBe(0);
    const name = await runCastore(CASTORE_CLI, ["cat", root, "a/b/n\\xff\\xfe", "--store", store]);
    expect(name.stdout.toString()).toBe("binary name");
  });

  it("cat names what is at PATH when it is not a file", async () => {
    const d = await runCastore(CASTORE_CLI, ["cat", root, "a", "--store", store]);
    expect(d.code).not.toBe(0);
    expect(d.stderr.toString()).toMatch(/a is a directory, not a file/);
    const l = await runCastore(CASTORE_CLI, ["cat", root, "link", "--store", store]);
    expect(l.stderr.toString()).toMatch(/link is a symlink \(to a\/hello.txt\), not a file/);
    const missing = await runCastore(CASTORE_CLI, ["cat", root, "nope", "--store", store]);
    expect(missing.stderr.toString()).toMatch(/nope: no such path/);
    const bad = await runCastore(CASTORE_CLI, ["cat", root, "a/hello.txt", "--range", "9-3", "--store", store]);
    expect(bad.stderr.toString()).toMatch(/END must be at least START/);
  });
});
