import { Command, Option } from "commander";
import { importTree } from "../importer.js";
import { createProgress } from "../progress.js";
import { DEFAULT_STORE, openStore } from "../stores.js";
import { positiveInt } from "./options.js";

export function importCommand(): Command {
  return new Command("import")
    .description("Import a directory tree into a store and print its root digest (hex) on stdout")
    .argument("<path>", "directory to import")
    .addOption(new Option("--store <url>", "store URL").default(DEFAULT_STORE).env("CASTORE_STORE"))
    .addOption(new Option("--jobs <n>", "files hashed at once").default(8).argParser(positiveInt))
    .option("--no-progress", "no progress output")
    .action(async (path: string, opts) => {
      const service = await openStore(opts.store);
      const progress = createProgress("import", { enabled: opts.progress });
      const controller = new AbortController();
      const onSignal = () => controller.abort(new Error("interrupted"));
      process.once("SIGINT", onSignal);
      try {
        const result = await importTree(service, path, {
          concurrency: opts.jobs,
          signal: controller.signal,
          onProgress: (p) => progress.update({ directories: p.directories, files: p.files, bytes: p.bytes }),
        });
        progress.stop();
        process.stdout.write(`${result.digest.hex}\n`);
      } finally {
        progress.stop();
        process.off("SIGINT", onSignal);
        await service.close();
      }
    });
}
