/**
 * @castore-ts/web: the web port of `castore serve` (the castore services'
 * read side over Connect and gRPC-web, raw file bytes with Range, the app's
 * static files). The browser app itself lives in src/app and is built by Vite.
 */
export { createWebServer, type WebServer, type WebServerOptions } from "./server/web-server.js";
export { loadStaticAssets, type StaticAssets } from "./server/static-assets.js";
export { readOnlyRoutes, type ReadOnlyServices } from "./server/read-only-services.js";
export { answerRange, type RangeAnswer } from "./server/range.js";
export { contentTypeOf, contentDisposition } from "./server/content-type.js";
export { parseRootedPath } from "./server/paths.js";
export { decodeSegment, encodeSegment, encodeRootSegment } from "./shared/segments.js";
export { escapeName } from "./shared/names.js";
