/**
 * `castore ref`: named roots on an lmdb store, through the built command.
 * The store-level rules (closure check, compare-and-swap, names) are the
 * conformance suite's refs.* scenarios; this checks the command's wiring:
 * arguments, output, exit codes and messages.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCastore } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

let dir: string;
let store: string;
let root: string;
let hashOnlyRoot: string;

const castore = (...args: string[]) => runCastore(CASTORE_CLI, [...args, "--store", store]);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "castore-ref-cli-"));
  const tree = join(dir, "tree");
  mkdirSync(join(tree, "sub"), { recursive: true });
  writeFileSync(join(tree, "sub", "file.txt"), "named roots\n");
  store = `lmdb://${join(dir, "store")}`;
  const imported = await castore("import", tree, "--no-progress");
  expect(imported.code, imported.stderr).toBe(0);
  root = imported.stdout.toString().trim();
  // The same directories under another file content, stored without it: directories only.
  writeFileSync(join(tree, "sub", "file.txt"), "contents never stored\n");
  const hashOnly = await castore("import", tree, "--no-progress", "--no-contents");
  expect(hashOnly.code, hashOnly.stderr).toBe(0);
  hashOnlyRoot = hashOnly.stdout.toString().trim();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("castore ref", () => {
  it("set, get, ls and rm a ref", async () => {
    const set = await castore("ref", "set", "releases/2026-12-06", root);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout.toString()).toBe(`releases/2026-12-06 ${root}\n`);
    const get = await castore("ref", "get", "releases/2026-12-06");
    expect(get.stdout.toString()).toBe(`${root}\n`);
    await castore("ref", "set", "other", root);
    const ls = await castore("ref", "ls", "releases/");
    expect(ls.stdout.toString()).toBe(`releases/2026-12-06 ${root}\n`);
    const rm = await castore("ref", "rm", "releases/2026-12-06");
    expect(rm.code, rm.stderr).toBe(0);
    const gone = await castore("ref", "get", "releases/2026-12-06");
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("no ref releases/2026-12-06 in lmdb://");
  });

  it("set refuses a tree whose file contents are not stored, naming the missing blob", async () => {
    const r = await castore("ref", "set", "incomplete", hashOnlyRoot);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not wholly stored: blob [0-9a-f]{64} is missing/);
    expect((await castore("ref", "get", "incomplete")).code).toBe(1);
  });

  it("--expect makes set a compare-and-swap that says what the ref holds when it loses", async () => {
    expect((await castore("ref", "set", "cas", root, "--expect", "none")).code).toBe(0);
    const lost = await castore("ref", "set", "cas", root, "--expect", "none");
    expect(lost.code).toBe(1);
    expect(lost.stderr).toContain(`ref cas holds ${root}; the change expected it to not exist`);
    expect((await castore("ref", "rm", "cas", "--expect", root)).code).toBe(0);
  });

  it("get takes ref:NAME wherever it takes a root; an unknown ref is an error naming it", async () => {
    await castore("ref", "set", "for-get", root);
    const byRef = await castore("get", "ref:for-get");
    const byDigest = await castore("get", root);
    expect(byRef.code, byRef.stderr).toBe(0);
    expect(byRef.stdout.toString()).toBe(byDigest.stdout.toString());
    const missing = await castore("get", "ref:no-such-ref");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("no ref no-such-ref in lmdb://");
  });

  it("import --ref names the root; ls, cat, export and verify take ref:NAME", async () => {
    const tree = join(dir, "tree2");
    mkdirSync(join(tree, "d"), { recursive: true });
    writeFileSync(join(tree, "d", "hello.txt"), "hello through a ref\n");
    const imported = await castore("import", tree, "--no-progress", "--ref", "releases/latest");
    expect(imported.code, imported.stderr).toBe(0);
    const digest = imported.stdout.toString().trim();
    expect(imported.stderr).toContain(`import: ref releases/latest → ${digest}`);
    expect((await castore("ref", "get", "releases/latest")).stdout.toString()).toBe(`${digest}\n`);

    const ls = await castore("ls", "ref:releases/latest", "d");
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout.toString()).toContain("hello.txt");
    const cat = await castore("cat", "ref:releases/latest", "d/hello.txt");
    expect(cat.stdout.toString()).toBe("hello through a ref\n");
    const out = join(dir, "exported");
    const exported = await castore("export", "ref:releases/latest", out, "--no-progress");
    expect(exported.code, exported.stderr).toBe(0);
    expect(readFileSync(join(out, "d", "hello.txt"), "utf8")).toBe("hello through a ref\n");
    const verify = await runCastore(CASTORE_CLI, ["verify", store, "ref:releases/latest", "--blobs", "--no-progress"]);
    expect(verify.code, verify.stderr + verify.stdout.toString()).toBe(0);
  });

  it("import --ref with --no-contents stores the directories but refuses the ref, saying which blob is missing", async () => {
    const tree = join(dir, "tree3");
    mkdirSync(tree, { recursive: true });
    writeFileSync(join(tree, "only-hashed.txt"), "never stored\n");
    const r = await castore("import", tree, "--no-progress", "--no-contents", "--ref", "hash-only");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not wholly stored: blob [0-9a-f]{64} is missing/);
    expect((await castore("ref", "get", "hash-only")).code).toBe(1);
  });

  it("refuses a bad name before touching the store", async () => {
    const r = await castore("ref", "set", "a//b", root);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('invalid ref name "a//b": it has an empty component');
  });
});
