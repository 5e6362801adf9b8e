import { defaultClientConditions, defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

// One vitest run over every package. Workspace packages resolve to their
// TypeScript sources through the "source" export condition, so tests never
// run against stale dist/ output. The bundler-only "module" condition is left
// out: Node never applies it, and some packages (the AWS SDK's checksums)
// break under it.
const nodeLike = (conditions: readonly string[]) => conditions.filter((c) => c !== "module");

export default defineConfig({
  resolve: { conditions: ["source", ...nodeLike(defaultClientConditions)] },
  ssr: { resolve: { conditions: ["source", ...nodeLike(defaultServerConditions)] } },
  test: {
    include: ["packages/*/src/**/*.test.ts", "proto/src/**/*.test.ts", "scripts/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    reporters: ["default", "./scripts/backend-summary-reporter.ts"],
  },
});
