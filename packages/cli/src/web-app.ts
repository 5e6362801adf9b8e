/**
 * The web app's built files, shipped in this package: the cli's build copies
 * @castore-ts/web's Vite output (its dist/app) to dist/web-app. Without them
 * (a build that skipped the app), the web port still serves the services,
 * /raw and /blob.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { loadStaticAssets, type StaticAssets } from "@castore-ts/web";

export const WEB_APP_DIR = fileURLToPath(new URL("../dist/web-app", import.meta.url));

export function webAppAssets(): StaticAssets | undefined {
  return existsSync(WEB_APP_DIR) ? loadStaticAssets(WEB_APP_DIR) : undefined;
}
