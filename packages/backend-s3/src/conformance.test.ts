import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { s3BlobService } from "./s3-blobs.js";
import { s3TestStoresForFile } from "./test-s3.js";

// One S3 server and bucket for the file; every factory() call gets its own fresh key prefix.
const stores = s3TestStoresForFile();

describeDirectoryService({
  name: "s3",
  factory: async () => {
    const { service, prefix } = stores.open();
    const { store } = stores.openBlobStore({ prefix });
    return {
      service,
      // Corruption behind the service's back: the directory's bytes replaced in its index object and in every closure object.
      corrupt: (digest, bytes) => stores.corrupt(prefix, digest, bytes),
      // The same prefix's blobs (the same URL serves both layers).
      blobs: s3BlobService(store),
      // A chunk object overwritten behind the store's back.
      corruptChunk: (digest, bytes) => stores.putRaw(store.chunkKey(digest), bytes),
    };
  },
  capabilities: {
    corruption: true,
    getNonRoot: true,
    blobCorruption: true,
    refs: "refs are not stored in S3 yet (issue 20: ref objects with conditional writes)",
    largeBlobs: true, // 1 GiB: about 4 100 chunk objects, 3 minutes on s3rver on the shared 2-core test machine
    breadthFirst:
      "getRecursive yields the closure object's frame order, root to leaves but depth first (README: Object layout)",
  },
});
