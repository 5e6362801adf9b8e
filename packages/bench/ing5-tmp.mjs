import { generatedTree } from "./dist/trees.js";
import { encodeAndHashLoop } from "./dist/timing.js";
import { openDirectoryService } from "@castore-ts/core";
import "@castore-ts/backend-memory";
const tree = generatedTree(100_000, 10);
async function ingest(svc) { const p = svc.putMultipleStart(); for (const d of tree.directories) await p.put(d); return p.close(); }
const r = { base: [], none: [] };
for (let i = 0; i < 14; i++) {
  const mode = i % 2 ? "base" : "none";
  if (mode === "base") for (let k = 0; k < 3; k++) { gc(); encodeAndHashLoop(tree.directories); }
  const svc = await openDirectoryService("memory://");
  gc();
  const t = performance.now(); await ingest(svc); r[mode].push(Math.round(performance.now() - t));
  await svc.close();
}
console.log(JSON.stringify(r));
