/**
 * The documents under docs/ stay true: code blocks marked with the file they
 * come from are that file, verbatim; the serving example and
 * `castore conformance URL` work as docs/writing-a-backend.md says; and
 * scripts/report/make-report.mjs turns results into the report, the chart
 * and the measured columns of docs/backends.md.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import { main as castore } from "@castore-ts/cli";
import { serveForConformance } from "./docs-example/serve-for-conformance.js";

const root = new URL("../../../", import.meta.url).pathname;
/** The repository's prettier (a root dev dependency), as the lint step runs it. */
const prettierBin = join(root, "node_modules/prettier/bin/prettier.cjs");
const docs = join(root, "docs");

describe("docs/*.md code blocks", () => {
  const blocks = readdirSync(docs)
    .filter((f) => f.endsWith(".md"))
    .flatMap((f) =>
      [
        ...readFileSync(join(docs, f), "utf8").matchAll(
          /<!-- ((?:packages|scripts)\/[\w./-]+) -->\n\n?```\w+\n([\s\S]*?)```/g,
        ),
      ].map((m) => ({
        doc: f,
        path: m[1],
        shown: m[2],
      })),
    );

  it("quote files of the repository", () => {
    expect(blocks.map((b) => b.doc)).toContain("writing-a-backend.md");
  });

  it.each(blocks.map((b) => [b.doc, b.path, b.shown]))("%s shows %s verbatim", (_doc, path, shown) => {
    expect(shown).toBe(readFileSync(join(root, path), "utf8"));
  });
});

describe("docs/writing-a-backend.md: a served DirectoryService passes `castore conformance URL`", () => {
  it("runs the suite's first scenarios against the example server", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const server = await serveForConformance(new MemoryDirectoryService(), 0);
    const written: string[] = [];
    const write = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      expect(log.mock.calls[0][0]).toBe(`serving; now run: castore conformance ${server.url}`);
      const code = await castore(["conformance", server.url!, "--filter", "^§7\\.[1-9] "]);
      write.mockRestore();
      expect(code, written.join("")).toBe(0);
      expect(written.join("")).toMatch(/: 9 passed, 0 failed, 0 skipped\n/);
    } finally {
      write.mockRestore();
      log.mockRestore();
      await server.close({ deadlineMs: 1000 });
    }
  });
});

describe("scripts/report/make-report.mjs", () => {
  const dir = mkdtempSync(join(tmpdir(), "castore-report-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const result = (name: string, value: number, unit: string, baseline: number, notes: string) => ({
    name,
    value,
    unit,
    baseline,
    ratio: value / baseline,
    notes,
  });

  /** Runs the report on `rows` beside a copy of docs/backends.md, in a folder of its own: that folder. */
  const makeReport = (rows: object[]): string => {
    const at = mkdtempSync(join(dir, "report-"));
    writeFileSync(join(at, "results.json"), JSON.stringify(rows));
    copyFileSync(join(docs, "backends.md"), join(at, "backends.md"));
    const run = spawnSync(
      process.execPath,
      [join(root, "scripts/report/make-report.mjs"), "--results", join(at, "results.json"), "--docs", at],
      { encoding: "utf8" },
    );
    expect(run.status, run.stderr).toBe(0);
    return at;
  };

  it("says which run took the measures, and lists the rows an earlier run left", () => {
    const report = (rows: object[]) => readFileSync(join(makeReport(rows), "bench-report.md"), "utf8");
    const newest = "2026-12-07T20:55:00.000Z";
    const row = (name: string, run?: string) => ({ ...result(name, 1, "x/s", 2, "n"), ...(run ? { run } : {}) });
    expect(report([row("a", newest), row("b", newest)])).toContain(
      `All 2 measures are from one run, started ${newest}.`,
    );
    const mixed = report([row("a", newest), row("old one", "2026-12-01T10:00:00.000Z"), row("b", newest), row("c")]);
    expect(mixed).toContain(`2 of 4 measures are from the run started ${newest}. These 2 are from earlier runs`);
    expect(mixed).toContain("- old one: 2026-12-01T10:00:00.000Z\n- c: a run before runs were stamped\n");
    expect(report([row("a"), row("b")])).toContain("None of the 2 measures names the run that took it");
  });

  it("writes the report, the chart and the measured columns of backends.md", () => {
    const notes = "generateTree({ directories: 100000, seed: 10 }); setup; best of 2 rounds, each on a fresh store";
    const results = [
      result(
        "memory: ingest 100000 directories through the putter",
        90_000,
        "directories/s",
        180_000,
        "from another bench",
      ),
      result("backends: memory 100k-tree ingest", 60_000, "directories/s", 80_000, notes),
      result("backends: memory 100k-tree getRecursive", 50_000, "directories/s", 80_000, notes),
      result(
        "backends: s3 5k-tree ingest",
        300,
        "directories/s",
        40_000,
        notes.replace("100000", "5000").replace("2 rounds", "1 round"),
      ),
      result(
        "backends: s3 5k-tree getRecursive",
        8_000,
        "directories/s",
        40_000,
        notes.replace("100000", "5000").replace("2 rounds", "1 round"),
      ),
      result(
        "backends: grpc wide-100k ingest",
        0,
        "entries/s",
        250_000,
        "refused by the server: ResourceExhausted: message size 4418724 is larger than configured readMaxBytes 4194304; …",
      ),
    ];
    const at = makeReport(results);

    const report = readFileSync(join(at, "bench-report.md"), "utf8");
    expect(report).toContain("shared 2-core machine");
    expect(report).toContain("| memory | 60,000 dirs/s | 0.75× | 50,000 dirs/s | 0.63× |");
    expect(report).toContain("| grpc | refused (RESOURCE_EXHAUSTED) | — | — | — |");
    expect(report).toContain(
      "| ingest 100000 directories through the putter | 90,000 | directories/s | 180,000 | 0.50 | from another bench |",
    );

    const svg = readFileSync(join(at, "bench-chart.svg"), "utf8");
    expect(svg).toMatch(/^<svg [^>]*viewBox="0 0 1000 600"/);
    expect(svg).toContain("directories per second, best of 2 rounds (s3: 1)");
    expect(svg).toContain(">60k</text>");
    expect(svg).toContain("s3 ran a smaller generated tree (5k-tree");

    const backends = readFileSync(join(at, "backends.md"), "utf8");
    expect(spawnSync(process.execPath, [prettierBin, "--check", join(at, "backends.md")]).status).toBe(0);
    const memoryRow = backends.split("\n").find((l) => l.startsWith("| `memory://`"))!;
    // Cells as prettier pads them (the report formats backends.md as the lint step checks it).
    const cells = (row: string) => row.split("|").map((cell) => cell.trim());
    expect(cells(memoryRow)).toContain("ingest 60k/s (0.75×)<br>getRecursive 50k/s (0.63×)");
    const s3Row = backends.split("\n").find((l) => l.startsWith("| `s3://`"))!;
    expect(s3Row).toContain("ingest 300/s (0.0075×)<br>getRecursive 8.0k/s (0.20×) (5k directories)");
    const grpcRow = backends.split("\n").find((l) => l.startsWith("| `grpc+http://`"))!;
    expect(cells(grpcRow)).toContain("ingest refused (RESOURCE_EXHAUSTED)<br>(rates in entries/s)");
    expect(backends.split("<!-- bench:end -->")[1]).toBe(
      readFileSync(join(docs, "backends.md"), "utf8").split("<!-- bench:end -->")[1],
    );
  });
});
