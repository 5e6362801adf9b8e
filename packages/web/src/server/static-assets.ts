/**
 * The web app's built files, served with caching headers: files under
 * `assets/` carry a content hash in their names (Vite's output), so they are
 * `immutable`; `index.html` is `no-cache` (revalidated every time: it names
 * the current hashed files). Every app route (`/`, `/tree/…`) answers
 * index.html: the app reads the path itself.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type * as http from "node:http";
import { createHash } from "node:crypto";

export interface StaticAssets {
  /** Answers the request when it is for the app; false when it is not. */
  serve(req: http.IncomingMessage, res: http.ServerResponse, pathname: string): boolean;
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  immutable: boolean;
}

/** Loads every file below `dir` once (the app is small); a missing index.html is an error naming the folder. */
export function loadStaticAssets(dir: string): StaticAssets {
  const files = new Map<string, Asset>();
  const walk = (folder: string, prefix: string) => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      const full = path.join(folder, entry.name);
      const urlPath = `${prefix}/${entry.name}`;
      if (entry.isDirectory()) walk(full, urlPath);
      else if (entry.isFile()) {
        const body = fs.readFileSync(full);
        files.set(urlPath, {
          body,
          type: TYPES[path.extname(entry.name)] ?? "application/octet-stream",
          etag: `"${createHash("sha256").update(body).digest("hex").slice(0, 32)}"`,
          immutable: urlPath.startsWith("/assets/"),
        });
      }
    }
  };
  walk(dir, "");
  const index = files.get("/index.html");
  if (!index) throw new Error(`web app assets in ${dir}: no index.html (was the web app built?)`);
  const isAppRoute = (p: string) => p === "/" || p === "/index.html" || p.startsWith("/tree/") || p === "/login";
  return {
    serve(req, res, pathname) {
      const asset = files.get(pathname) ?? (isAppRoute(pathname) ? index : undefined);
      if (!asset) return false;
      const headers: http.OutgoingHttpHeaders = {
        "content-type": asset.type,
        etag: asset.etag,
        "cache-control": asset.immutable ? "public, max-age=31536000, immutable" : "no-cache",
        "x-content-type-options": "nosniff",
        // Everything the app loads comes from this server: no CDN, no fonts from elsewhere.
        "content-security-policy":
          "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'",
      };
      if (req.headers["if-none-match"] === asset.etag) {
        res.writeHead(304, headers).end();
        return true;
      }
      headers["content-length"] = asset.body.length;
      res.writeHead(200, headers);
      res.end(req.method === "HEAD" ? undefined : asset.body);
      return true;
    },
  };
}
