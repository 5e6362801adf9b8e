/**
 * The `castore` command's entry point, resolved by package name through the
 * CLI's `./bin` export (always its built dist/main.js), for
 * @castore-ts/testing's startCastoreServe.
 */
import { createRequire } from "node:module";

export const CASTORE_BIN = createRequire(import.meta.url).resolve("@castore-ts/cli/bin");
