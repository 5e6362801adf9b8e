import { Command, Option } from "commander";
import { NotFoundError, type RootArgument, directoryDigest, redactUrl } from "@castore-ts/core";
import { directoryJson, directoryNodes, formatNode } from "../format.js";
import { NAMES_HELP } from "../names.js";
import { DEFAULT_STORE, openStore } from "../stores.js";
import { parseRoot, resolveRoot } from "../roots.js";

export function getCommand(): Command {
  return new Command("get")
    .description("Print a directory, or with --recursive its whole closure root to leaves")
    .argument("<digest>", `directory digest (hex or b3:base64), or ref:NAME`, parseRoot)
    .option("-r, --recursive", "print every directory reachable from it, breadth first")
    .option("--json", "one JSON object per directory per line; names as escaped text plus exact base64 (see README)")
    .addOption(new Option("--store <url>", "store URL").default(DEFAULT_STORE).env("CASTORE_STORE"))
    .addHelpText("after", NAMES_HELP)
    .action(async (root: RootArgument, opts) => {
      const digest = await resolveRoot(root, opts.store);
      const service = await openStore(opts.store);
      try {
        let count = 0;
        const source = opts.recursive ? service.getRecursive(digest) : oneOf(await service.get(digest));
        for await (const directory of source) {
          const d = count === 0 ? digest : directoryDigest(directory);
          if (opts.json) {
            process.stdout.write(`${JSON.stringify(directoryJson(d, directory))}\n`);
          } else {
            const lines = directoryNodes(directory).map(formatNode);
            process.stdout.write(`${count ? "\n" : ""}directory ${d.hex}\n${lines.map((l) => `  ${l}\n`).join("")}`);
          }
          count++;
        }
        if (count === 0) throw new NotFoundError(`directory ${digest} not found in ${redactUrl(opts.store)}`);
      } finally {
        await service.close();
      }
    });
}

async function* oneOf<T>(x: T | undefined): AsyncIterable<T> {
  if (x !== undefined) yield x;
}
