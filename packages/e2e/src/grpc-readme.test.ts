/**
 * backend-grpc's README example is a file of this package (it serves the
 * memory backend, which backend-grpc's own tests may not import): it cannot
 * drift, and it runs.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";

const grpcPackage = dirname(createRequire(import.meta.url).resolve("@castore-ts/backend-grpc/package.json"));
const readme = readFileSync(join(grpcPackage, "README.md"), "utf8");

describe("backend-grpc README.md", () => {
  it("shows packages/e2e/src/grpc-readme-example.ts verbatim", () => {
    const block = /<!-- packages\/e2e\/src\/grpc-readme-example\.ts -->\n\n?```ts\n([\s\S]*?)```/.exec(readme);
    expect(block?.[1]).toBe(readFileSync(new URL("grpc-readme-example.ts", import.meta.url), "utf8"));
  });

  it("the example runs: B, then A", async () => {
    const { main } = await import("./grpc-readme-example.js");
    expect(await main()).toEqual(["1 child directories", "0 child directories"]);
  });
});
