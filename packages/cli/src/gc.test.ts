/**
 * `castore gc` on an lmdb store, through the built command: what stays, what
 * goes, the dry run, the summary and JSON report, and bad arguments. The
 * store-level rules are the conformance suite's gc.* scenarios.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCastore } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

let dir: string;
let store: string;
let kept: string;
let dropped: string;
let keptByFlag: string;

const castore = (...args: string[]) => runCastore(CASTORE_CLI, [...args, "--store", store]);

async function importTree(name: string, content: string): Promise<string> {
  const tree = join(dir, name);
  mkdirSync(join(tree, "sub"), { recursive: true });
  writeFileSync(join(tree, "sub", "file.txt"), content);
  const imported = await castore("import", tree, "--no-progress");
  expect(imported.code, imported.stderr.toString()).toBe(0);
  return imported.stdout.toString().trim();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "castore-gc-cli-"));
  store = `lmdb://${join(dir, "store")}`;
  kept = await importTree("kept", "kept by a ref\n");
  dropped = await importTree("dropped", "named by nothing\n");
  keptByFlag = await importTree("flagged", "kept by --keep\n");
  const set = await castore("ref", "set", "releases/kept", kept);
  expect(set.code, set.stderr.toString()).toBe(0);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("castore gc", () => {
  it("with the default grace deletes nothing written just now", async () => {
    const r = await castore("gc", "--no-progress");
    expect(r.code, r.stderr.toString()).toBe(0);
    expect(r.stdout.toString()).toMatch(/^gc: deleted 0 directories, 0 blobs, 0 chunks \(0 B\); kept /);
  });

  it("--dry-run counts what would go and deletes nothing", async () => {
    const r = await castore("gc", "--grace", "0", "--dry-run", "--keep", keptByFlag, "--no-progress");
    expect(r.code, r.stderr.toString()).toBe(0);
    // The file is one chunk: it is that chunk, stored without a manifest (spec §8.1).
    expect(r.stdout.toString()).toMatch(/^gc: would delete 2 directories, 0 blobs, 1 chunk \(/);
    expect((await castore("ls", dropped)).code).toBe(0);
  });

  it("--grace 0 deletes the unreferenced tree and keeps the ref's and --keep's, contents included", async () => {
    const r = await castore("gc", "--grace", "0", "--keep", keptByFlag, "--json", "--no-progress");
    expect(r.code, r.stderr.toString()).toBe(0);
    const report = JSON.parse(r.stdout.toString());
    expect(report).toMatchObject({ dryRun: false, roots: 2, deleted: { directory: 2, blob: 0, chunk: 1 }, spared: 0 });
    const gone = await castore("ls", dropped);
    expect(gone.code).toBe(1);
    expect(gone.stderr.toString()).toMatch(/not found|no directory/i);
    for (const [root, text] of [
      [kept, "kept by a ref\n"],
      [keptByFlag, "kept by --keep\n"],
    ]) {
      const cat = await castore("cat", root, "sub/file.txt");
      expect(cat.code, cat.stderr.toString()).toBe(0);
      expect(cat.stdout.toString()).toBe(text);
    }
    // verify takes the store as its first argument, not --store.
    const verify = await runCastore(CASTORE_CLI, ["verify", store, "ref:releases/kept", "--blobs"]);
    expect(verify.code, verify.stderr.toString()).toBe(0);
  });

  it("rejects a bad --grace and an unknown --keep ref, naming them, and deletes nothing", async () => {
    const bad = await castore("gc", "--grace", "an hour");
    expect(bad.code).toBe(1);
    expect(bad.stderr.toString()).toContain("expected a duration: 0, or a number with a unit ms, s, m, h or d");
    const unknown = await castore("gc", "--grace", "0", "--keep", "ref:no/such");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.toString()).toContain("no ref no/such");
    expect((await castore("cat", keptByFlag, "sub/file.txt")).code).toBe(0);
  });
});
