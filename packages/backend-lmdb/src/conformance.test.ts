import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { LmdbDirectoryService } from "./index.js";

describeDirectoryService({
  name: "lmdb",
  factory: async () => {
    const dir = mkdtempSync(join(tmpdir(), "castore-lmdb-conformance-"));
    const service = await LmdbDirectoryService.open(join(dir, "store"));
    return {
      service,
      teardown: async () => {
        await service.close();
        rmSync(dir, { recursive: true, force: true });
      },
      // Bad bytes written straight through lmdb, replacing what is stored.
      corrupt: async (digest, bytes) => {
        service.store.directories.putSync(digest.bytes, bytes);
      },
    };
  },
  capabilities: { corruption: true, blobs: "blob store not wired yet (issue 17)" },
});
