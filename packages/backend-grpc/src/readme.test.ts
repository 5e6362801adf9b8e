/** README.md's example is a file of this package: it cannot drift, and it runs. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

describe("README.md", () => {
  it("shows src/test-readme-example.ts verbatim", () => {
    const block = /<!-- src\/test-readme-example\.ts -->\n```ts\n([\s\S]*?)```/.exec(readme);
    expect(block?.[1]).toBe(readFileSync(new URL("test-readme-example.ts", import.meta.url), "utf8"));
  });

  it("the example runs: B, then A", async () => {
    const { main } = await import("./test-readme-example.js");
    expect(await main()).toEqual(["1 child directories", "0 child directories"]);
  });
});
