/**
 * @castore/backend-memory: importing this registers `memory://` with core's
 * openDirectoryService. Every open gives a new, empty store.
 */
import { InvalidUrlError, registerDirectoryServiceScheme } from "@castore/core";
import { MemoryDirectoryService } from "./memory.js";

export { MemoryDirectoryService, MemoryDirectoryStore } from "./memory.js";

registerDirectoryServiceScheme("memory", "memory://", (url, opts) => {
  if (url.host !== "" || (url.pathname !== "" && url.pathname !== "/") || url.search !== "") {
    throw new InvalidUrlError(`memory:// takes no host, path or options, got ${JSON.stringify(url.href)}`);
  }
  return new MemoryDirectoryService({ sizeCheck: opts.sizeCheck });
});
