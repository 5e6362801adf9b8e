/**
 * `castore sync` between lmdb stores, through the built command: what is
 * sent the first time, that a second run sends nothing, that a changed tree
 * sends only its new blob, refs with ref:NAME and --all, and bad arguments.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCastore } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

let dir: string;
let src: string;
let first: string;

const castore = async (...args: string[]) => {
  const r = await runCastore(CASTORE_CLI, args);
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
};
const store = (name: string) => `lmdb://${join(dir, name)}`;

function writeTree(name: string, changed: string): string {
  const tree = join(dir, name);
  mkdirSync(join(tree, "a", "b"), { recursive: true });
  writeFileSync(join(tree, "a", "b", "same.txt"), "unchanged\n");
  writeFileSync(join(tree, "a", "big.bin"), Buffer.alloc(2 * 1024 * 1024 + 5, 7));
  writeFileSync(join(tree, "changed.txt"), changed);
  return tree;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "castore-sync-cli-"));
  src = store("src");
  const imported = await castore(
    "import",
    writeTree("one", "first\n"),
    "--store",
    src,
    "--ref",
    "docs/one",
    "--no-progress",
  );
  expect(imported.code, imported.stderr).toBe(0);
  first = imported.stdout.trim();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("castore sync", () => {
  it("copies a tree and its ref; a second run sends nothing and says so", async () => {
    const dst = store("dst");
    const r = await castore("sync", src, dst, "ref:docs/one", "--no-progress");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^sync: 1 tree \(0 already there\); sent 3 directories, 3 blobs \(2\.0 MiB\); 0 blobs already there; refs set: docs\/one\n$/,
    );
    expect((await castore("ref", "get", "docs/one", "--store", dst)).stdout.trim()).toBe(first);
    const cat = await castore("cat", "ref:docs/one", "a/b/same.txt", "--store", dst);
    expect(cat.stdout).toBe("unchanged\n");
    const verify = await castore("verify", dst, "--blobs");
    expect(verify.code, verify.stderr).toBe(0);

    const again = await castore("sync", src, dst, "ref:docs/one", "--no-progress");
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe(
      "sync: nothing to send: the destination holds all of it (1 tree); refs set: docs/one\n",
    );
  });

  it("sends only the changed file's blob and the new directories of an edited tree", async () => {
    const dst = store("dst-edit");
    expect((await castore("sync", src, dst, first, "--no-progress")).code).toBe(0);
    const edited = await castore(
      "import",
      writeTree("two", "second\n"),
      "--store",
      src,
      "--ref",
      "docs/two",
      "--no-progress",
    );
    const r = await castore("sync", src, dst, "ref:docs/two", "--no-progress");
    expect(r.code, r.stderr).toBe(0);
    // Only the new root is sent, referring to the stored subdirectory (a partial upload); of the blobs only
    // the root's files are asked about, and only changed.txt's is new.
    expect(r.stdout).toMatch(/sent 1 directory, 1 blob \(7 B\); \d+ blobs? already there; refs set: docs\/two/);
    expect((await castore("cat", edited.stdout.trim(), "changed.txt", "--store", dst)).stdout).toBe("second\n");
  });

  it("--all copies every ref of the source with its tree", async () => {
    const dst = store("dst-all");
    const r = await castore("sync", src, dst, "--all", "--no-progress");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/refs set: docs\/one, docs\/two\n$/);
    const listed = await castore("ref", "ls", "--store", dst);
    expect(
      listed.stdout
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" ")[0]),
    ).toEqual(["docs/one", "docs/two"]);
  });

  it("refuses a run with no roots, and an unknown ref, naming what was wrong", async () => {
    const none = await castore("sync", src, store("dst-none"));
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("nothing to sync: name roots (DIGEST or ref:NAME), or give --all");
    const unknown = await castore("sync", src, store("dst-none"), "ref:no/such");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no ref no/such");
  });
});
