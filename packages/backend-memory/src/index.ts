/**
 * @castore-ts/backend-memory: importing this registers `memory://` with core's
 * openDirectoryService. Every open gives a new, empty store.
 */
import {
  InvalidUrlError,
  readStoreUrl,
  MapRefStore,
  registerBlobServiceScheme,
  registerRefStoreScheme,
  registerDirectoryServiceScheme,
} from "@castore-ts/core";
import { MemoryBlobService } from "./memory-blobs.js";
import { MemoryDirectoryService } from "./memory.js";

export { MemoryDirectoryService, MemoryDirectoryStore } from "./memory.js";
export { MemoryBlobService, MemoryBlobStore } from "./memory-blobs.js";
export { MemoryCollectableStore, type MemoryStore, openMemoryStore } from "./memory-store.js";

const invalid = (text: string, why: string) =>
  new InvalidUrlError(`invalid memory store URL ${JSON.stringify(text)}: ${why}; expected memory://`);

function checkMemoryUrl(input: URL): void {
  const { url, text } = readStoreUrl(input, "memory:", invalid);
  if (url.host !== "" || (url.pathname !== "" && url.pathname !== "/"))
    throw invalid(text, "memory:// takes no host or path");
  for (const [name] of url.searchParams) throw invalid(text, `unknown option "${name}" (memory:// takes none)`);
}

registerDirectoryServiceScheme("memory", "memory://", (url, opts) => {
  checkMemoryUrl(url);
  return new MemoryDirectoryService({ sizeCheck: opts.sizeCheck });
});

registerRefStoreScheme("memory", (url) => {
  checkMemoryUrl(url);
  return new MapRefStore();
});

registerBlobServiceScheme("memory", (url) => {
  checkMemoryUrl(url);
  return new MemoryBlobService();
});
