import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { postgresTestStoresForFile } from "./test-postgres.js";

// One server for the file; every factory() call gets its own fresh schema.
const stores = postgresTestStoresForFile();

describeDirectoryService({
  name: "postgres",
  factory: async () => {
    const service = stores.open();
    const schema = service.store.schema;
    return {
      service,
      teardown: async () => {
        await service.close();
        await stores.dropSchema(schema);
      },
      // Corruption behind the store's back: raw SQL, replacing whatever is stored.
      corrupt: async (digest, bytes) => {
        await service.store.init();
        await stores.admin.query(
          `INSERT INTO "${schema}".directories (digest, bytes) VALUES ($1, $2)
           ON CONFLICT (digest) DO UPDATE SET bytes = EXCLUDED.bytes`,
          [Buffer.from(digest.bytes), Buffer.from(bytes)],
        );
      },
    };
  },
  capabilities: { corruption: true, blobs: "blob store not wired yet (issue 17)" },
});
