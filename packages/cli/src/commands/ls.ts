import { Command, Option } from "commander";
import {
  NotFoundError,
  directorySize,
  makeDirectoryNode,
  traverseTo,
  Digest,
  redactUrl,
  type RootArgument,
} from "@castore-ts/core";
import { directoryNodes, formatNode } from "../format.js";
import { NAMES_HELP, escapeName, unescapeName } from "../names.js";
import { DEFAULT_STORE, openStore } from "../stores.js";
import { parseRoot, resolveRoot, ROOT_ARGUMENT_HELP } from "../roots.js";

export function lsCommand(): Command {
  return new Command("ls")
    .description("List a directory like `ls -l` (mode, size, digest, name), or the node a path leads to")
    .argument("<digest>", ROOT_ARGUMENT_HELP, parseRoot)
    .argument(
      "[path]",
      "path below the root, e.g. share/doc; names written as ls prints them (\\\\ a backslash, \\xNN a byte)",
    )
    .addOption(new Option("--store <url>", "store URL").default(DEFAULT_STORE).env("CASTORE_STORE"))
    .addHelpText("after", NAMES_HELP)
    .action(async (rootArgument: RootArgument, path: string | undefined, opts) => {
      const digest = await resolveRoot(rootArgument, opts.store);
      const pathBytes = path === undefined ? undefined : unescapeName(path);
      const service = await openStore(opts.store);
      try {
        const root = await service.get(digest);
        if (!root) throw new NotFoundError(`directory ${digest} not found in ${redactUrl(opts.store)}`);
        let listing = root;
        if (pathBytes?.length) {
          const node = await traverseTo(
            service,
            { kind: "directory", node: makeDirectoryNode("", digest, directorySize(root)) },
            pathBytes,
          );
          if (!node) throw new NotFoundError(`${escapeName(pathBytes)}: no such path below ${digest}`);
          if (node.kind !== "directory") {
            process.stdout.write(`${formatNode(node)}\n`);
            return;
          }
          const child = await service.get(Digest.fromBytes(node.node.digest));
          if (!child)
            throw new NotFoundError(`directory ${Digest.fromBytes(node.node.digest)} is missing from the store`);
          listing = child;
        }
        const lines = directoryNodes(listing).map(formatNode);
        if (lines.length) process.stdout.write(`${lines.join("\n")}\n`);
      } finally {
        await service.close();
      }
    });
}
