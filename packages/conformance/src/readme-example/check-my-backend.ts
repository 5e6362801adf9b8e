import { runConformance } from "@castore-ts/conformance";
import { MyDirectoryService } from "./my-backend.js";

const report = await runConformance(
  {
    name: "my-backend",
    factory: async () => ({ service: new MyDirectoryService() }),
    capabilities: {
      corruption: "this example wires no corrupt() hook",
      blobs: "the example stores directories only",
      refs: "nor refs",
      gc: "nor garbage collection",
    },
  },
  { filter: /^§7\.[1-9] /, onResult: (r) => console.log(r.status, r.id, r.title, r.message ?? "") },
);
if (report.failed > 0) throw new Error(`${report.failed} of ${report.results.length} scenarios failed`);
