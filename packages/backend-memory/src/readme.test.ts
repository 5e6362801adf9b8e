import { readFileSync } from "node:fs";
import { expect, it, vi } from "vitest";

it("README's usage snippet is src/readme-example.test-helper.ts, and it runs", async () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const snippet = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(snippet).toBe(readFileSync(new URL("./readme-example.test-helper.ts", import.meta.url), "utf8"));
  const log = vi.spyOn(console, "log").mockImplementation(() => {});
  try {
    await import("./readme-example.test-helper.js");
    expect(log.mock.calls.map((c) => c[0]?.$typeName ?? c[0])).toEqual([
      "tvix.castore.v1.Directory",
      "tvix.castore.v1.Directory",
      undefined,
    ]);
  } finally {
    log.mockRestore();
  }
});
