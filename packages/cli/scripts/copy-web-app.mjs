// Copies the web app's built files (@castore-ts/web's dist/app, Vite's output)
// into this package's dist/web-app, so the cli package ships them and
// `castore serve --web-listen` serves them (src/web-app.ts).
import { cpSync, existsSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const webPackage = path.dirname(require.resolve("@castore-ts/web/package.json"));
const from = path.join(webPackage, "dist", "app");
const to = new URL("../dist/web-app", import.meta.url).pathname;
if (!existsSync(path.join(from, "index.html"))) {
  throw new Error(`${from}: no built web app (build @castore-ts/web first)`);
}
rmSync(to, { recursive: true, force: true });
cpSync(from, to, { recursive: true });
