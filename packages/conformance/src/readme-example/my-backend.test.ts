import { describeDirectoryService } from "@castore-ts/conformance/vitest";
import { MyDirectoryService } from "./my-backend.js";

describeDirectoryService({
  name: "my-backend",
  factory: async () => {
    const service = new MyDirectoryService();
    return { service, corrupt: async (digest, bytes) => service.corrupt(digest, bytes) };
  },
  capabilities: {
    repair: "the example store implements no repair()",
    blobs: "the example stores directories only",
    refs: "nor refs",
    gc: "nor garbage collection",
  },
});
