/**
 * The `castore` command's entry point, resolved by package name through the
 * CLI's `./bin` export, which is always its built dist/main.js (vitest's
 * "source" condition does not apply to it, nor to createRequire): the tests
 * here run the CLI as it ships. `pnpm test` builds it first.
 */
import { createRequire } from "node:module";

export const CASTORE_BIN = createRequire(import.meta.url).resolve("@castore-ts/cli/bin");
