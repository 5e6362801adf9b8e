import { Command, Option } from "commander";
import type { RootArgument } from "@castore-ts/core";
import { exportTree } from "../exporter.js";
import { createProgress } from "../progress.js";
import { DEFAULT_STORE, openBlobs, openStore } from "../stores.js";
import { positiveInt } from "./options.js";
import { parseRoot, resolveRoot, ROOT_ARGUMENT_HELP } from "../roots.js";

const PROGRESS_INTERVAL_MS = 100;

export function exportCommand(): Command {
  return new Command("export")
    .description(
      "Write the tree under a root directory to DEST: directories, file contents (verified as they are read), " +
        "the executable bit, symlinks with their exact targets, names as bytes. DEST must not exist or be an " +
        "empty directory; the tree is written next to it and renamed into place at the end, so a failure or " +
        "Ctrl-C leaves nothing at DEST",
    )
    .argument("<digest>", ROOT_ARGUMENT_HELP, parseRoot)
    .argument("<dest>", "where to write the tree")
    .option("--jobs <n>", "files written at once", positiveInt, 4)
    .addOption(new Option("--store <url>", "store URL").default(DEFAULT_STORE).env("CASTORE_STORE"))
    .option("--no-progress", "no progress output")
    .action(async (root: RootArgument, dest: string, opts) => {
      const digest = await resolveRoot(root, opts.store);
      const controller = new AbortController();
      const interrupt = () => controller.abort(new Error("interrupted"));
      process.once("SIGINT", interrupt);
      process.once("SIGTERM", interrupt);
      const [directories, blobs] = await Promise.all([openStore(opts.store), openBlobs(opts.store)]);
      // A bar on a terminal, a line every few seconds otherwise; redrawn at most every PROGRESS_INTERVAL_MS.
      const progress = createProgress("export", { enabled: opts.progress });
      let shownAt = -Infinity;
      try {
        const done = await exportTree(directories, blobs, digest, dest, {
          concurrency: opts.jobs,
          signal: controller.signal,
          onProgress: (p) => {
            const now = performance.now();
            if (now - shownAt < PROGRESS_INTERVAL_MS) return;
            shownAt = now;
            progress.update({ directories: p.directories, files: p.files, bytes: p.bytes });
          },
        });
        progress.update({ directories: done.directories, files: done.files, bytes: done.bytes }); // the last, unthrottled
        progress.stop();
        process.stderr.write(
          `exported ${done.directories} directories, ${done.files} files, ${done.bytes} bytes to ${dest}\n`,
        );
      } finally {
        progress.stop();
        process.off("SIGINT", interrupt);
        process.off("SIGTERM", interrupt);
        await Promise.all([directories.close(), blobs.close()]);
      }
    });
}
