import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { benchResult, recordBenchResults } from "./results.js";

describe("recordBenchResults", () => {
  it("replaces entries of the same name and keeps the others", () => {
    const file = join(mkdtempSync(join(tmpdir(), "castore-bench-")), "bench-results.json");
    writeFileSync(file, JSON.stringify([benchResult("other", 1, "x"), benchResult("mine", 1, "ops/s", 2)]));
    recordBenchResults([benchResult("mine", 3, "ops/s", 4)], file);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual([
      { name: "other", value: 1, unit: "x", baseline: null, ratio: null },
      { name: "mine", value: 3, unit: "ops/s", baseline: 4, ratio: 0.75, run: expect.any(String) },
    ]);
  });

  it("stamps what it writes with this run, and leaves an earlier run's rows as they were", () => {
    const file = join(mkdtempSync(join(tmpdir(), "castore-bench-")), "bench-results.json");
    const earlier = { ...benchResult("earlier", 1, "x"), run: "2026-01-01T00:00:00.000Z" };
    writeFileSync(file, JSON.stringify([earlier]));
    recordBenchResults(
      [benchResult("a", 1, "x"), { ...benchResult("b", 2, "x"), run: "2020-01-01T00:00:00.000Z" }],
      file,
    );
    const [kept, a, b] = JSON.parse(readFileSync(file, "utf8")) as { run: string }[];
    expect(kept).toEqual(earlier);
    // One run for everything this process wrote, whatever a result claimed: the process's start, or pnpm bench's.
    expect(a.run).toBe(b.run);
    expect(Date.parse(a.run)).toBeGreaterThan(Date.parse(earlier.run));
  });
});
