import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { s3TestStoresForFile } from "./test-s3.js";

// One S3 server and bucket for the file; every factory() call gets its own fresh key prefix.
const stores = s3TestStoresForFile();

describeDirectoryService({
  name: "s3",
  factory: async () => {
    const { service, prefix } = stores.open();
    return {
      service,
      // Corruption behind the service's back: the directory's bytes replaced in its index object and in every closure object.
      corrupt: (digest, bytes) => stores.corrupt(prefix, digest, bytes),
    };
  },
  capabilities: {
    corruption: true,
    getNonRoot: true,
    blobs: "blob store not wired yet (issue 17)",
    breadthFirst:
      "getRecursive yields the closure object's frame order, root to leaves but depth first (README: Object layout)",
  },
});
