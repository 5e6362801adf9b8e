/**
 * `castore conformance URL --read-only --root DIGEST` against a served store
 * holding known trees (castore serve over lmdb, as child processes): the read
 * scenarios run on the given roots, legacy snix sizes are a note, and a
 * server that cannot serve a root fails.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Directory, type SizeCheck, directoryDigest, fixtures } from "@castore-ts/core";
import { LmdbDirectoryService } from "@castore-ts/backend-lmdb";
import { runCastore, startCastoreServe } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

const CANONICAL = [fixtures.DIRECTORY_WITH_KEEP, fixtures.DIRECTORY_COMPLICATED, fixtures.DIRECTORY_NESTED];
const LEGACY = [fixtures.DIRECTORY_WITH_KEEP, fixtures.DIRECTORY_COMPLICATED_LEGACY, fixtures.DIRECTORY_NESTED_LEGACY];
const ROOTS = ["roots.get", "roots.closure", "roots.get-each", "roots.traversal"];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-conformance-roots-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An lmdb store at `name` holding `tree` (uploaded leaves to root with `sizeCheck`); returns its URL. */
async function lmdbHolding(name: string, tree: Directory[], sizeCheck: SizeCheck): Promise<string> {
  const path = join(dir, name);
  const service = await LmdbDirectoryService.open(path, { sizeCheck });
  try {
    const putter = service.putMultipleStart();
    for (const d of tree) await putter.put(d);
    await putter.close();
  } finally {
    await service.close();
  }
  return `lmdb://${path}`;
}

interface JsonReport {
  results: { id: string; status: string; message: string | null }[];
  passed: number;
  failed: number;
  skipped: number;
}

/** Serves `store`, runs `castore conformance URL --read-only --json` with `args`, returns the exit code and report. */
async function readOnlyRun(store: string, serveArgs: string[], args: string[]) {
  const server = await startCastoreServe(CASTORE_CLI, ["--listen", "127.0.0.1:0", "--store", store, ...serveArgs]);
  try {
    const r = await runCastore(CASTORE_CLI, ["conformance", server.url, "--read-only", "--json", ...args], {
      timeoutMs: 60_000,
    });
    return { code: r.code, stderr: r.stderr.toString(), report: JSON.parse(r.stdout.toString()) as JsonReport };
  } finally {
    await server.stop();
  }
}

/** The read-only scenarios that run on any served lmdb store (it keeps blobs: blob.empty only reads). */
const READS = ["uploads.absent pass", "blob.empty pass"];

const ran = (report: JsonReport) => report.results.filter((r) => r.status !== "skip").map((r) => `${r.id} ${r.status}`);

describe("castore conformance --read-only --root", () => {
  it("checks the closure of each root a served store holds: every read scenario passes", async () => {
    const store = await lmdbHolding("canonical", CANONICAL, "exact");
    const root = directoryDigest(fixtures.DIRECTORY_NESTED);
    const complicated = directoryDigest(fixtures.DIRECTORY_COMPLICATED);
    // Two roots, one inside the other's closure, given as hex and as b3:base64.
    const { code, report, stderr } = await readOnlyRun(store, [], ["--root", root.hex, "--root", complicated.toB3()]);
    expect(code, stderr).toBe(0);
    expect(ran(report)).toEqual([...READS, ...ROOTS.map((id) => `${id} pass`)]);
    expect(report.failed).toBe(0);
    const closure = report.results.find((r) => r.id === "roots.closure")!;
    expect(closure.message).toContain(`${root.hex}: 3 directories`);
    expect(closure.message).toContain(`${complicated.hex}: 2 directories`);
    expect(closure.message).not.toMatch(/legacy/);
  }, 120_000);

  it("without --root, --read-only runs only uploads.absent, as before", async () => {
    const store = await lmdbHolding("plain", CANONICAL, "exact");
    const { code, report } = await readOnlyRun(store, [], []);
    expect(code).toBe(0);
    expect(ran(report)).toEqual(READS);
    expect(report.results.some((r) => r.id.startsWith("roots."))).toBe(false);
  }, 120_000);

  it("a server holding snix's legacy sizes (served snix-compat) passes, with a note naming them", async () => {
    const store = await lmdbHolding("legacy", LEGACY, "snix-compat");
    const root = directoryDigest(fixtures.DIRECTORY_NESTED_LEGACY);
    const { code, report, stderr } = await readOnlyRun(store, ["--size-check", "snix-compat"], ["--root", root.hex]);
    expect(code, stderr).toBe(0);
    expect(ran(report)).toEqual([...READS, ...ROOTS.map((id) => `${id} pass`)]);
    const closure = report.results.find((r) => r.id === "roots.closure")!;
    expect(closure.message).toMatch(
      new RegExp(
        `${root.hex}: 2 DirectoryNode\\(s\\) declare a legacy size .* "inner" in ${root.hex} declares 8 .*, canonical 5`,
      ),
    );
  }, 120_000);

  it("the same store served exact re-checks sizes on read: its getRecursive fails, and so does roots.closure", async () => {
    const store = await lmdbHolding("legacy-exact", LEGACY, "snix-compat");
    const root = directoryDigest(fixtures.DIRECTORY_NESTED_LEGACY);
    const { code, report } = await readOnlyRun(store, [], ["--root", root.hex]);
    expect(code).toBe(1);
    const closure = report.results.find((r) => r.id === "roots.closure")!;
    expect(closure.status).toBe("fail");
    expect(closure.message).toMatch(/declares size 8 for directories\[0\] "inner"/);
    // get of the root alone has no child to compare with: it still passes.
    expect(report.results.find((r) => r.id === "roots.get")!.status).toBe("pass");
  }, 120_000);

  it("a root the server does not hold fails roots.get and roots.closure", async () => {
    const store = await lmdbHolding("other", CANONICAL, "exact");
    const absent = directoryDigest(fixtures.DIRECTORY_NESTED_LEGACY);
    const { code, report } = await readOnlyRun(store, [], ["--root", absent.hex]);
    expect(code).toBe(1);
    expect(report.results.find((r) => r.id === "roots.get")!.message).toMatch(
      /returned undefined: the root is not stored/,
    );
    expect(report.results.find((r) => r.id === "roots.closure")!.message).toMatch(
      /yielded nothing: the root is not stored/,
    );
  }, 120_000);

  it("rejects a --root that is not a digest, naming the option", async () => {
    const r = await runCastore(CASTORE_CLI, ["conformance", "grpc+http://127.0.0.1:1", "--read-only", "--root", "xyz"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.toString()).toMatch(/option '--root <digest>' argument 'xyz' is invalid/);
  });
});
