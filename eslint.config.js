// @ts-check
// Lint: typescript-eslint's recommended rules plus the package graph
// (scripts/lint/package-boundaries.js). Formatting is Prettier's (`pnpm format:check`).
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { packageBoundaries } from "./scripts/lint/package-boundaries.js";

const backend = {
  shipped: ["core"],
  test: ["conformance", "testing"],
  why: "a backend builds on core only; it never knows another backend, the cli or the test servers at run time",
};

/** What each workspace package's shipped code and tests may import, by folder name. */
export const layers = {
  proto: { shipped: [], test: [], why: "the generated protocol code depends on nothing of ours" },
  core: { shipped: ["proto"], test: [], why: "core knows no backend, no conformance suite and no cli" },
  "backend-memory": backend,
  "backend-lmdb": backend,
  "backend-postgres": backend,
  "backend-s3": backend,
  "backend-grpc": { ...backend, shipped: ["core", "proto"] },
  conformance: { shipped: ["core", "proto"], test: [], why: "the suite judges backends through core's interface only" },
  testing: { shipped: [], test: [], why: "the test servers know nothing of castore" },
  web: {
    shipped: ["core", "proto"],
    test: ["backend-memory", "backend-lmdb"],
    why: "the web port serves core's services; which store it serves is the cli's choice",
  },
  cli: {
    shipped: [
      "core",
      "proto",
      "conformance",
      "backend-memory",
      "backend-lmdb",
      "backend-postgres",
      "backend-s3",
      "backend-grpc",
      "web",
    ],
    test: ["testing"],
    why: "the cli ships no test servers",
  },
  bench: { shipped: ["*"], why: "" },
  e2e: { shipped: ["*"], why: "" },
};

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "**/src/gen/**", "**/.turbo/**", "coverage/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.ts", "**/*.js", "**/*.mjs"],
    plugins: { castore: { rules: { "package-boundaries": packageBoundaries } } },
    rules: {
      "castore/package-boundaries": ["error", { layers }],
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" },
      ],
    },
  },
  {
    files: ["**/*.js", "**/*.mjs", "scripts/**"],
    languageOptions: {
      globals: {
        process: "readonly",
        console: "readonly",
        URL: "readonly",
        Buffer: "readonly",
        setTimeout: "readonly",
        clearTimeout: "readonly",
      },
    },
  },
);
