/** README.md's examples are files of this package, and its scenario list is `scenarios`: neither can drift. */
import { readFileSync } from "node:fs";
import { describe, expect, it, vi } from "vitest";
import { rootScenarios, scenarios } from "./index.js";

const packageDir = new URL("../", import.meta.url);
const readme = readFileSync(new URL("README.md", packageDir), "utf8");

describe("README.md", () => {
  const blocks = [...readme.matchAll(/<!-- (src\/readme-example\/[\w.-]+) -->\n\n?```ts\n([\s\S]*?)```/g)];

  it("shows the three example files", () => {
    expect(blocks.map((b) => b[1])).toEqual([
      "src/readme-example/my-backend.test.ts",
      "src/readme-example/my-backend.ts",
      "src/readme-example/check-my-backend.ts",
    ]);
  });

  it.each(blocks.map((b) => [b[1], b[2]]))("shows %s verbatim", (path, shown) => {
    expect(shown).toBe(readFileSync(new URL(path, packageDir), "utf8"));
  });

  it("lists every scenario, in run order (roots.* last)", () => {
    const section = readme.split("\n## Scenarios\n")[1].split("\n## ")[0];
    const listed = section
      .split("\n")
      .filter((l) => l.startsWith("- "))
      .map((l) => l.slice(2));
    // The roots.* scenarios follow, as they run: after the others, only with roots.
    expect(listed).toEqual([...scenarios, ...rootScenarios].map((s) => `\`${s.id}\` ${s.name}`));
  });

  it("has a programmatic example that runs and passes", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    try {
      await import("./readme-example/check-my-backend.js");
      const statuses = log.mock.calls.map((c) => c[0]);
      expect(statuses.length).toBeGreaterThanOrEqual(9);
      expect(new Set(statuses)).toEqual(new Set(["pass"]));
    } finally {
      log.mockRestore();
    }
  });
});
