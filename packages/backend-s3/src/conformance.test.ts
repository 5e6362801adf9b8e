import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { s3BlobService } from "./s3-blobs.js";
import { S3GarbageCollector, s3RefService } from "./s3-gc.js";
import { s3TestStoresForFile } from "./test-s3.js";

// One S3 server and bucket for the file; every factory() call gets its own fresh key prefix.
const stores = s3TestStoresForFile();

describeDirectoryService({
  name: "s3",
  factory: async () => {
    const { service, prefix } = stores.open();
    const { store } = stores.openBlobStore({ prefix });
    const blobs = s3BlobService(store);
    // Refs and the collector on the same prefix, each on its own client.
    const refs = s3RefService(stores.openObjects(prefix).objects, service);
    const gc = new S3GarbageCollector(stores.openObjects(prefix).objects);
    return {
      service,
      // Corruption behind the service's back: the directory's bytes replaced in its index object and in every closure object.
      corrupt: (digest, bytes) => stores.corrupt(prefix, digest, bytes),
      // The same prefix's blobs (the same URL serves both layers).
      blobs,
      // A chunk object overwritten behind the store's back.
      corruptChunk: (digest, bytes) => stores.putRaw(store.chunkKey(digest), bytes),
      refs,
      gc,
      teardown: async () => {
        await Promise.all([refs.close(), gc.close(), blobs.close(), service.close()]);
      },
    };
  },
  capabilities: {
    corruption: true,
    getNonRoot: true,
    blobCorruption: true,
    atomicRefSwap:
      "the test server (s3rver) ignores If-Match and If-None-Match on PUT and DELETE: two racing swaps from one value can both succeed (atomic on AWS S3 and MinIO; README: Refs)",
    gcConcurrent:
      "deleteUnusedSince re-checks LastModified with a HEAD, then deletes: a touch landing between the two is lost (S3 has no delete conditional on LastModified; README: Garbage collection)",
    largeBlobs: true, // 1 GiB: about 4 100 chunk objects, 3 minutes on s3rver on the shared 2-core test machine
    breadthFirst:
      "getRecursive yields the closure object's frame order, root to leaves but depth first (README: Object layout)",
  },
});
