#!/usr/bin/env node
// Assembles src/blob/fastcdc.wat into src/blob/fastcdc-wasm.ts (the module's
// bytes as base64), so that neither the build nor a user of the package needs
// a WebAssembly toolchain. Run it after editing the .wat:
//   node packages/core/scripts/build-fastcdc-wasm.mjs
// `--check` exits 1 when the committed file is stale (a core test runs it).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import initWabt from "wabt";

const blobDir = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "blob");
const watPath = join(blobDir, "fastcdc.wat");
const outPath = join(blobDir, "fastcdc-wasm.ts");

const wabt = await initWabt();
const module = wabt.parseWat("fastcdc.wat", readFileSync(watPath, "utf8"));
module.validate();
const { buffer } = module.toBinary({});
module.destroy();

const base64 = Buffer.from(buffer).toString("base64");
const lines = base64.match(/.{1,100}/g).map((line) => `  "${line}" +`);
lines[lines.length - 1] = lines[lines.length - 1].slice(0, -2);
const source = `// Generated from fastcdc.wat by packages/core/scripts/build-fastcdc-wasm.mjs: do not edit.
/** The assembled FastCDC scan module (${buffer.length} bytes), base64. */
export const FASTCDC_WASM_BASE64 =
${lines.join("\n")};
`;

if (process.argv.includes("--check")) {
  const current = readFileSync(outPath, "utf8");
  if (current !== source) {
    console.error(`${outPath} is stale: run node packages/core/scripts/build-fastcdc-wasm.mjs`);
    process.exit(1);
  }
} else {
  writeFileSync(outPath, source);
  console.log(`wrote ${outPath} (${buffer.length} bytes of wasm)`);
}
