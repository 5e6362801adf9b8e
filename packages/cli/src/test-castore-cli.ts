/**
 * This package's own built entry point, for the tests that run `castore` as a
 * child process through @castore-ts/testing's runCastore/startCastoreServe
 * (which take the entry point as their first argument). `pnpm test` builds
 * dist first.
 */
import { fileURLToPath } from "node:url";

export const CASTORE_CLI = fileURLToPath(new URL("../dist/main.js", import.meta.url));
