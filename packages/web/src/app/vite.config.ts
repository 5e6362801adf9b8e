/**
 * Builds the web app into ../../dist/app: hashed file names under assets/
 * (served immutable), index.html (served no-cache). Nothing is loaded from
 * elsewhere: the wasm BLAKE3 is emitted as an asset of its own.
 */
import { defineConfig } from "vite";

export default defineConfig({
  root: new URL(".", import.meta.url).pathname,
  base: "/",
  logLevel: "warn",
  build: {
    outDir: new URL("../../dist/app", import.meta.url).pathname,
    emptyOutDir: true,
    assetsDir: "assets",
    // The wasm stays a file (fetched from this server), not a data: URL.
    assetsInlineLimit: 0,
    target: "es2022",
    sourcemap: false,
  },
});
