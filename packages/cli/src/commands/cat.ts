import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Command, InvalidArgumentError, Option } from "commander";
import {
  Digest,
  NotFoundError,
  ValidationError,
  directorySize,
  makeDirectoryNode,
  redactUrl,
  traverseTo,
  type RootArgument,
} from "@castore-ts/core";
import { NAMES_HELP, escapeName, unescapeName } from "../names.js";
import { DEFAULT_STORE, openBlobs, openStore } from "../stores.js";
import { parseRoot, resolveRoot } from "../roots.js";

/** `START-END` (inclusive, as HTTP and curl -r count) or `START-` (to the end). */
export function parseRange(text: string): { offset: number; length?: number } {
  const m = /^(\d+)-(\d*)$/.exec(text);
  if (!m) throw new InvalidArgumentError(`expected START-END or START- (byte offsets), got ${JSON.stringify(text)}`);
  const start = Number(m[1]);
  if (m[2] === "") return { offset: start };
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start)
    throw new InvalidArgumentError(`range ${text}: END must be at least START`);
  return { offset: start, length: end - start + 1 };
}

export function catCommand(): Command {
  return new Command("cat")
    .description(
      "Write a file's bytes to stdout: DIGEST is a blob, or with PATH a directory and PATH a file below it. " +
        "Every byte is verified against its chunk's digest before it is written",
    )
    .argument("<digest>", "blob digest, or with PATH the root directory's (hex or b3:base64, or ref:NAME)", parseRoot)
    .argument("[path]", "path of a file below the root; names written as ls prints them")
    .option("--range <START-END>", "only these bytes (inclusive; START- reads to the end)", parseRange)
    .addOption(new Option("--store <url>", "store URL").default(DEFAULT_STORE).env("CASTORE_STORE"))
    .addHelpText("after", NAMES_HELP)
    .action(async (root: RootArgument, path: string | undefined, opts) => {
      const digest = await resolveRoot(root, opts.store);
      const blobDigest = path === undefined ? digest : await fileBelow(opts.store, digest, unescapeName(path));
      const blobs = await openBlobs(opts.store);
      try {
        const stream = await blobs.read(blobDigest, opts.range ?? {});
        if (!stream) throw new NotFoundError(`blob ${blobDigest} not found in ${redactUrl(opts.store)}`);
        await pipeline(Readable.from(stream, { objectMode: false }), process.stdout, { end: false });
      } finally {
        await blobs.close();
      }
    });
}

/** The blob digest of the file at `path` below the directory `root`; anything else there is an error naming what it is. */
async function fileBelow(store: string, root: Digest, path: Uint8Array): Promise<Digest> {
  const service = await openStore(store);
  try {
    const directory = await service.get(root);
    if (!directory) throw new NotFoundError(`directory ${root} not found in ${redactUrl(store)}`);
    const node = await traverseTo(
      service,
      { kind: "directory", node: makeDirectoryNode("", root, directorySize(directory)) },
      path,
    );
    const shown = escapeName(path);
    if (!node) throw new NotFoundError(`${shown}: no such path below ${root}`);
    if (node.kind === "directory") throw new ValidationError(`${shown} is a directory, not a file`);
    if (node.kind === "symlink")
      throw new ValidationError(`${shown} is a symlink (to ${escapeName(node.node.target)}), not a file`);
    return Digest.fromBytes(node.node.digest);
  } finally {
    await service.close();
  }
}
