/**
 * The web port of `castore serve`: one HTTP/1.1 server (browsers do not speak
 * h2c) answering
 * - the castore services, read side only, over the Connect and gRPC-web
 *   protocols (connect-node's adapter), so a browser client made with
 *   connect-web from the same generated code calls them;
 * - `/raw/<root>/<path…>` and `/blob/<digest>`: file bytes (raw-files.ts);
 * - the web app's static files (static-assets.ts), when given.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { BlobService, DirectoryService, RefService } from "@castore-ts/core";
import { readOnlyRoutes } from "./read-only-services.js";
import { createRawFilesHandler, sendText } from "./raw-files.js";
import { type StaticAssets } from "./static-assets.js";

export interface WebServerOptions {
  directories: DirectoryService;
  blobs?: BlobService;
  refs?: RefService;
  /** TCP host and port (port 0 picks a free one). */
  listen: { host: string; port: number };
  /** The web app's built files; without, only the services, /raw and /blob are served. */
  assets?: StaticAssets;
  /**
   * Whether a request may read: checks its `authorization` header. Without,
   * every request may (a public, read-only port). The app's own files are
   * always served, so that its login form can load.
   */
  authorize?: (authorization: string | undefined) => boolean;
  /** Where unexpected failures go. */
  onError?: (error: unknown, url: string) => void;
}

export interface WebServer {
  listen(): Promise<void>;
  /** http://host:port/ once listening. */
  readonly url: string | undefined;
  close(): Promise<void>;
}

export function createWebServer(options: WebServerOptions): WebServer {
  const services = connectNodeAdapter({
    connect: true,
    grpcWeb: true,
    grpc: false,
    routes: readOnlyRoutes(options),
  });
  const rawFiles = createRawFilesHandler(options);
  const isServicePath = (pathname: string) =>
    pathname.startsWith("/tvix.castore.v1.") || pathname.startsWith("/castore.refs.v1.");

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://web.invalid");
    const { pathname } = url;
    const read = req.method === "GET" || req.method === "HEAD";
    const guarded = isServicePath(pathname) || pathname.startsWith("/raw/") || pathname.startsWith("/blob/");
    if (guarded && options.authorize && !options.authorize(req.headers.authorization)) {
      sendText(res, 401, "this castore web port needs `authorization: Bearer TOKEN`", {
        "www-authenticate": 'Bearer realm="castore"',
      });
      return;
    }
    if (isServicePath(pathname)) {
      services(req, res);
      return;
    }
    if (pathname.startsWith("/raw/") || pathname.startsWith("/blob/")) {
      if (!read)
        return sendText(res, 405, `${req.method} is not allowed here: the web port is read-only`, {
          allow: "GET, HEAD",
        });
      rawFiles(req, res, pathname, url.searchParams).catch((e) => {
        options.onError?.(e, req.url ?? "");
        res.destroy();
      });
      return;
    }
    if (options.assets && read && options.assets.serve(req, res, pathname)) return;
    sendText(res, 404, `nothing at ${pathname}`);
  });

  let url: string | undefined;
  return {
    get url() {
      return url;
    },
    async listen() {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(options.listen.port, options.listen.host, () => {
          server.off("error", reject);
          resolve();
        });
      });
      const info = server.address() as AddressInfo;
      url = `http://${info.address.includes(":") ? `[${info.address}]` : info.address}:${info.port}/`;
    },
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Reads still running are cut: the store is about to close under them.
        setTimeout(() => server.closeAllConnections(), 1000).unref();
      });
    },
  };
}
