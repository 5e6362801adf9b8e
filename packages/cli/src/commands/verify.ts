import { Command, Option } from "commander";
import { redactUrl, type Digest } from "@castore/core";
import { createProgress } from "../progress.js";
import { openStore } from "../stores.js";
import { type Problem, verifyRoots, verifyStore } from "../verify.js";
import { parseDigest, parseSizeCheck, positiveInt } from "./options.js";

function formatProblem(p: Problem): string {
  const where = p.path === undefined ? "" : ` at /${p.path}`;
  return `${p.kind} ${p.digest}${where}: ${p.message}`;
}

export function verifyCommand(): Command {
  return new Command("verify")
    .description(
      "Check a store: re-hash every directory, check every child directory is present with the declared size. " +
        "Walks the given roots, or every stored directory when none are given (for stores that can list). " +
        "Prints one line per problem on stdout; exits 1 if there is any.",
    )
    .argument("<url>", "store URL")
    .argument("[roots...]", "root digests to walk (hex or b3:base64)")
    .addOption(new Option("--size-check <mode>", "exact, or at-least").default("exact"))
    .addOption(new Option("--jobs <n>", "directories read at once").default(16).argParser(positiveInt))
    .option("--no-progress", "no progress output")
    .action(async (url: string, rootTexts: string[], opts) => {
      const roots: Digest[] = rootTexts.map(parseDigest);
      const service = await openStore(url);
      const progress = createProgress("verify", { enabled: opts.progress });
      try {
        const verifyOpts = {
          sizeCheck: parseSizeCheck(opts.sizeCheck),
          concurrency: opts.jobs,
          onProblem: (p: Problem) => process.stdout.write(`${formatProblem(p)}\n`),
          onProgress: (p: { directories: number; problems: number }) => progress.update({ directories: p.directories, problems: p.problems }),
        };
        const result = roots.length ? await verifyRoots(service, roots, verifyOpts) : await verifyStore(service, verifyOpts);
        progress.stop();
        process.stderr.write(`verify ${redactUrl(url)}: ${result.directories} directories checked, ${result.problems} problems\n`);
        if (result.problems > 0) process.exitCode = 1;
      } finally {
        await service.close();
      }
    });
}
