import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { ChunkedBlobService } from "@castore-ts/core";
import { PostgresBlobStore, PostgresGarbageCollector, postgresRefService } from "./index.js";
import { postgresTestStoresForFile } from "./test-postgres.js";

// One server for the file; every factory() call gets its own fresh schema.
const stores = postgresTestStoresForFile();

describeDirectoryService({
  name: "postgres",
  factory: async () => {
    const service = stores.open();
    const schema = service.store.schema;
    // Blobs in the same schema, on the directory store's pool.
    const blobs = new ChunkedBlobService(PostgresBlobStore.sharing(service.store));
    // Refs and the garbage collector in the same schema too; a ref's set protects its tree (spec §10.2).
    const refs = postgresRefService(service, blobs);
    const gc = PostgresGarbageCollector.sharing(service.store);
    return {
      service,
      blobs,
      refs,
      gc,
      teardown: async () => {
        await gc.close();
        await refs.close();
        await blobs.close();
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
      corruptChunk: async (digest, bytes) => {
        await service.store.init();
        await stores.admin.query(`UPDATE "${schema}".chunks SET data = $2 WHERE digest = $1`, [
          Buffer.from(digest.bytes),
          Buffer.from(bytes),
        ]);
      },
    };
  },
  capabilities: { corruption: true },
});
