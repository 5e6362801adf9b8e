export { createProgram, main } from "./main.js";
export {
  importTree,
  type ImportOptions,
  type ImportProgress,
  LOCAL_UPLOAD_CONCURRENCY,
  UnsupportedFileTypeError,
} from "./importer.js";
export { escapeName } from "./names.js";
export { type SyncCounts, type SyncSide, syncRoots } from "./sync.js";
export { parseListen } from "./commands/serve.js";
export { verifyRoots, verifyStore, type Problem, type VerifyOptions, type VerifyResult } from "./verify.js";
export { WEB_APP_DIR, webAppAssets } from "./web-app.js";
