/**
 * The roots.* scenarios (target.roots) and closure.legacy-sizes against
 * stores holding known bytes: what passes, what is a note, what fails.
 */
import {
  type ClosureEntry,
  type Digest,
  type Directory,
  type DirectoryStore,
  type SizeCheck,
  StoreDirectoryService,
  directoryDigest,
  encodeDirectory,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
} from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import { type ConformanceTarget, runConformance, scenarios, scenariosFor } from "./index.js";

/** Bytes by hex digest, written as given: a store filled by another tool, with no upload check. */
class RawStore implements DirectoryStore {
  readonly backend = "raw";
  constructor(readonly bytes: Map<string, Uint8Array>) {}
  async getMany(digests: Digest[]) {
    return digests.map((d) => this.bytes.get(d.hex));
  }
  async putClosure(entries: ClosureEntry[]) {
    for (const e of entries) this.bytes.set(e.digest.hex, e.bytes.slice());
  }
  async close() {}
}

const { DIRECTORY_WITH_KEEP, DIRECTORY_COMPLICATED, DIRECTORY_NESTED } = fixtures;
const CANONICAL = [DIRECTORY_WITH_KEEP, DIRECTORY_COMPLICATED, DIRECTORY_NESTED];
const LEGACY = [DIRECTORY_WITH_KEEP, fixtures.DIRECTORY_COMPLICATED_LEGACY, fixtures.DIRECTORY_NESTED_LEGACY];

/** A read-only target over a store holding `tree` (its last directory the root), read with `readCheck`. */
function holding(tree: Directory[], readCheck: SizeCheck = "snix-compat"): ConformanceTarget {
  const bytes = new Map(tree.map((d) => [directoryDigest(d).hex, encodeDirectory(d)]));
  return {
    name: "held",
    factory: async () => ({ service: new StoreDirectoryService(new RawStore(bytes), { sizeCheck: readCheck }) }),
    capabilities: {
      write: "read-only test target",
      isolated: "one store for all scenarios",
      blobs: "directories only",
      refs: "directories only",
    },
    roots: [directoryDigest(tree[tree.length - 1])],
  };
}

async function verdicts(target: ConformanceTarget) {
  const report = await runConformance(target);
  return Object.fromEntries(report.results.map((r) => [r.id, r.status]));
}

describe("roots.* scenarios", () => {
  it("run only when roots are given, after the others", () => {
    expect(scenariosFor({ name: "x", factory: async () => ({}) as never })).toBe(scenarios);
    const ids = scenariosFor(holding(CANONICAL)).map((s) => s.id);
    expect(ids.slice(scenarios.length)).toEqual(["roots.get", "roots.closure", "roots.get-each", "roots.traversal"]);
  });

  it("pass on a canonical tree: uploads.absent and every roots.* scenario, the rest skipped", async () => {
    const report = await runConformance(holding(CANONICAL));
    const ran = report.results.filter((r) => r.status !== "skip");
    expect(ran.map((r) => `${r.id} ${r.status}`)).toEqual([
      "uploads.absent pass",
      "roots.get pass",
      "roots.closure pass",
      "roots.get-each pass",
      "roots.traversal pass",
    ]);
    const closure = report.results.find((r) => r.id === "roots.closure")!;
    expect(closure.message).toMatch(/: 3 directories$/);
    expect(report.results.find((r) => r.id === "roots.traversal")!.message).toMatch(/: 5 paths resolved$/);
  });

  it("pass on a legacy-sized tree, noting each legacy size", async () => {
    const report = await runConformance(holding(LEGACY));
    expect(report.failed).toBe(0);
    const closure = report.results.find((r) => r.id === "roots.closure")!;
    expect(closure.status).toBe("pass");
    expect(closure.message).toMatch(
      /2 DirectoryNode\(s\) declare a legacy size .* "inner" in .* declares 8 for .*, canonical 5/,
    );
  });

  it("fail on a size above 2·n + s", async () => {
    const over = [DIRECTORY_WITH_KEEP, fixtures.DIRECTORY_COMPLICATED_OVERSIZED];
    const report = await runConformance(holding(over));
    const closure = report.results.find((r) => r.id === "roots.closure")!;
    expect(closure.status).toBe("fail");
    expect(closure.message).toMatch(/declares size 3 for directories\[0\] "keep"/);
  });

  it("fail on an incomplete closure, an absent root, and a child stored under the wrong bytes", async () => {
    const missingChild = holding(CANONICAL);
    const partial = new Map(
      [DIRECTORY_NESTED, DIRECTORY_COMPLICATED].map((d) => [directoryDigest(d).hex, encodeDirectory(d)]),
    );
    missingChild.factory = async () => ({ service: new StoreDirectoryService(new RawStore(partial)) });
    expect(await verdicts(missingChild)).toMatchObject({ "roots.closure": "fail", "roots.get": "pass" });

    const absent = holding(CANONICAL);
    absent.roots = [
      directoryDigest(makeDirectory({ directories: [makeDirectoryNode("z", directoryDigest(DIRECTORY_NESTED), 5)] })),
    ];
    expect(await verdicts(absent)).toMatchObject({ "roots.get": "fail", "roots.closure": "fail" });

    const swapped = holding(CANONICAL);
    const bytes = new Map(CANONICAL.map((d) => [directoryDigest(d).hex, encodeDirectory(d)]));
    bytes.set(directoryDigest(DIRECTORY_WITH_KEEP).hex, encodeDirectory(fixtures.DIRECTORY_A));
    swapped.factory = async () => ({ service: new StoreDirectoryService(new RawStore(bytes)) });
    const report = await runConformance(swapped);
    const closure = report.results.find((r) => r.id === "roots.closure")!;
    expect(closure.status).toBe("fail");
    expect(closure.message).toMatch(/corrupt/);
  });
});

describe("closure.legacy-sizes", () => {
  const target = (store: SizeCheck, declared?: SizeCheck): ConformanceTarget => ({
    name: `store ${store}, declared ${declared ?? "nothing"}`,
    factory: async () => ({ service: new StoreDirectoryService(new RawStore(new Map()), { sizeCheck: store }) }),
    sizeCheck: declared,
  });
  const run = async (t: ConformanceTarget) => (await runConformance(t, { filter: "closure.legacy-sizes" })).results[0];

  it("passes when the store does what the target declares", async () => {
    expect((await run(target("exact", "exact"))).status).toBe("pass");
    expect((await run(target("snix-compat", "snix-compat"))).status).toBe("pass");
  });
  it("fails when it does not", async () => {
    const accepted = await run(target("snix-compat", "exact"));
    expect(accepted.status).toBe("fail");
    expect(accepted.message).toMatch(/succeeded .* expected it to fail/);
    const rejected = await run(target("exact", "snix-compat"));
    expect(rejected.status).toBe("fail");
    expect(rejected.message).toMatch(/declares size 2 for directories\[0\] "keep"/);
  });
  it("undeclared, passes either way and notes which", async () => {
    expect((await run(target("exact"))).message).toMatch(/legacy sizes rejected .*behaves as sizeCheck exact/);
    expect((await run(target("snix-compat"))).message).toMatch(/legacy sizes accepted/);
  });
});
