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
      { name: "mine", value: 3, unit: "ops/s", baseline: 4, ratio: 0.75 },
    ]);
  });
});
