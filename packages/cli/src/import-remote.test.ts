/**
 * `castore import` into a remote store whose idle timeout is shorter than
 * the time the import spends hashing: the upload is opened only once the
 * tree is walked and hashed, so the server never sees it idle.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  rmSync,
  writeFileSync,
  ftruncateSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCastore, startCastoreServe } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

const IDLE_MS = 200;
/** Sparse (no disk used); reading and hashing it takes about 1–2 s here, far beyond IDLE_MS. */
const BIG = 512 * 1024 * 1024;

let dir: string;
let tree: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-import-remote-"));
  tree = join(dir, "tree");
  // "a" sorts before "big": a/ is complete (and was put, opening the upload, before the fix) while big is still being hashed.
  mkdirSync(join(tree, "a"), { recursive: true });
  writeFileSync(join(tree, "a", "small"), "small\n");
  const fd = openSync(join(tree, "big"), "w");
  ftruncateSync(fd, BIG);
  closeSync(fd);
  writeFileSync(join(tree, "z"), "last\n");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("castore import to a grpc store with a short idle timeout", () => {
  it("succeeds although hashing takes longer than the idle timeout; spills the directories when told to", async () => {
    const server = await startCastoreServe(CASTORE_CLI, [
      "--listen",
      "127.0.0.1:0",
      "--store",
      "memory://",
      "--idle-timeout-ms",
      String(IDLE_MS),
    ]);
    try {
      const spoolDir = join(dir, "spool");
      mkdirSync(spoolDir);
      // --spool-memory 0: every directory goes through the temporary file.
      const r = await runCastore(
        CASTORE_CLI,
        [
          "import",
          tree,
          "--store",
          server.url,
          "--no-progress",
          "--jobs",
          "2",
          "--spool-memory",
          "0",
          "--spool-dir",
          spoolDir,
        ],
        { timeoutMs: 60_000 },
      );
      // nothing but the summary (no idle-timeout error): the contents too went up, the 512 MiB file as one blob
      expect(r.stderr).toMatch(
        /^import: 3 files, 512\.0 MiB hashed, 2 directories; 3 blobs uploaded \(512\.0 MiB\), 0 files already stored \(0 B skipped\)\n$/,
      );
      expect(r.code).toBe(0);
      const root = r.stdout.toString().trim();
      expect(root).toMatch(/^[0-9a-f]{64}$/);
      expect(readdirSync(spoolDir)).toEqual([]); // the spool file is removed
      const ls = await runCastore(CASTORE_CLI, ["ls", root, "--store", server.url]);
      expect(ls.code, ls.stderr).toBe(0);
      const lines = ls.stdout.toString().trim().split("\n");
      expect(lines.map((l) => l.split(" ").at(-1))).toEqual(["a/", "big", "z"]);
      expect(lines[1]).toMatch(new RegExp(`^-r--r--r-- +${BIG} `));
      const sub = await runCastore(CASTORE_CLI, ["ls", root, "a", "--store", server.url]);
      expect(sub.stdout.toString()).toMatch(/ small\n$/);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  }, 60_000);

  it("--help describes the spool options", async () => {
    const r = await runCastore(CASTORE_CLI, ["import", "--help"]);
    expect(r.code, r.stderr).toBe(0);
    const help = r.stdout.toString();
    expect(help).toMatch(/--spool-memory <MiB>/);
    expect(help).toMatch(/--spool-dir <dir>/);
    expect(help).toMatch(/the upload, opened\s+only then, sends just\s+those/);
  });
});
