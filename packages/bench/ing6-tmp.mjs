import { generatedTree } from "./dist/trees.js";
import { encodeAndHashLoop } from "./dist/timing.js";
import { openDirectoryService, blake3, encodeDirectory } from "@castore-ts/core";
import "@castore-ts/backend-memory";
const tree = generatedTree(100_000, 10);
const enc = tree.directories.map((d) => encodeDirectory(d));
async function ingest(svc) { const p = svc.putMultipleStart(); for (const d of tree.directories) await p.put(d); return p.close(); }
const pre = {
  none: () => {},
  base: () => encodeAndHashLoop(tree.directories),
  alloc: () => { let x = 0; for (let i = 0; i < 100_000; i++) x ^= new Uint8Array(170)[0]; return x; },
  enc: () => { let x = 0; for (const d of tree.directories) x ^= encodeDirectory(d)[0]; return x; },
  hash: () => { let x = 0; for (const e of enc) x ^= blake3(e)[0]; return x; },
};
const modes = process.argv.slice(2);
const r = Object.fromEntries(modes.map((m) => [m, []]));
for (let i = 0; i < 5 * modes.length; i++) {
  const mode = modes[i % modes.length];
  for (let k = 0; k < 3; k++) { gc(); pre[mode](); }
  const svc = await openDirectoryService("memory://");
  gc();
  const t = performance.now(); await ingest(svc); r[mode].push(Math.round(performance.now() - t));
  await svc.close();
}
for (const m of modes) console.log(m, r[m].sort((a, b) => a - b).join(" "));
