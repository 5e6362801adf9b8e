import { Command, Option } from "commander";
import pLimit from "p-limit";
import {
  type BlobService,
  type BlobStat,
  type FileNode,
  type Node,
  NotFoundError,
  ValidationError,
  isCastoreError,
  directorySize,
  makeDirectoryNode,
  traverseTo,
  Digest,
  redactUrl,
  type RootArgument,
} from "@castore-ts/core";
import { directoryNodes, formatNode } from "../format.js";
import { NAMES_HELP, escapeName, unescapeName } from "../names.js";
import { DEFAULT_STORE, isLocalStore, openBlobsIfAny, openStore } from "../stores.js";
import { parseRoot, resolveRoot, ROOT_ARGUMENT_HELP } from "../roots.js";

/** Files whose contents are asked about at once: a remote store answers each in a round trip. */
const CONTENT_CHECKS_AT_ONCE = 16;

const CONTENTS_HELP = `
A file whose contents are not in the store (imported with --no-contents, or
lost) is listed with "(contents not stored)" after its name, one stored with
another size than the directory says with "(contents stored with N bytes)",
one whose stored chunk list is damaged with "(contents corrupt: …)".
By default this is checked where it is cheap, a store on this machine (lmdb,
memory); --check-contents checks any store (over gRPC a Stat per file, 16 at
a time), --no-check-contents never checks. The check only reads: it marks
nothing as used (castore verify --blobs checks whole trees).`;

/**
 * What ls adds after a file's name when its contents are not as its
 * directory says: not stored, or stored with another size. Each distinct
 * blob is asked about once, with `stat` (a read: unlike `has`, it marks
 * nothing as used, so listing never writes).
 */
async function contentNotes(blobs: BlobService, files: readonly FileNode[]): Promise<Map<FileNode, string>> {
  const limit = pLimit(CONTENT_CHECKS_AT_ONCE);
  const stats = new Map<string, Promise<BlobStat | undefined>>();
  const notes = new Map<FileNode, string>();
  // Settled, not raced: no stat is still running when the caller closes the store.
  const checked = await Promise.allSettled(
    files.map(async (file) => {
      const digest = Digest.fromBytes(file.digest);
      let stat = stats.get(digest.hex);
      if (!stat) stats.set(digest.hex, (stat = limit(() => blobs.stat(digest))));
      let found: BlobStat | undefined;
      try {
        found = await stat;
      } catch (e) {
        // One damaged blob is that file's note, not the end of the listing; other failures are.
        if (!isCastoreError(e, "CORRUPTION")) throw e;
        notes.set(file, `(contents corrupt: ${(e as Error).message})`);
        return;
      }
      if (!found) notes.set(file, "(contents not stored)");
      else if (BigInt(found.size) !== file.size) notes.set(file, `(contents stored with ${found.size} bytes)`);
    }),
  );
  const failed = checked.find((c) => c.status === "rejected");
  if (failed) throw failed.reason;
  return notes;
}

/** The listing's lines, each file's with its note (when contents are checked). */
async function listingLines(nodes: readonly Node[], blobs: BlobService | undefined): Promise<string[]> {
  const files = nodes.flatMap((n) => (n.kind === "file" ? [n.node] : []));
  const notes = blobs && files.length > 0 ? await contentNotes(blobs, files) : undefined;
  return nodes.map((n) => {
    const note = n.kind === "file" ? notes?.get(n.node) : undefined;
    return note ? `${formatNode(n)} ${note}` : formatNode(n);
  });
}

export function lsCommand(): Command {
  return new Command("ls")
    .description("List a directory like `ls -l` (mode, size, digest, name), or the node a path leads to")
    .argument("<digest>", ROOT_ARGUMENT_HELP, parseRoot)
    .argument(
      "[path]",
      "path below the root, e.g. share/doc; names written as ls prints them (\\\\ a backslash, \\xNN a byte)",
    )
    .addOption(new Option("--store <url>", "store URL").default(DEFAULT_STORE).env("CASTORE_STORE"))
    .option("--check-contents", "mark files whose contents are not stored, whatever the store (see below)")
    .option("--no-check-contents", "do not check files' contents (default for a store on another machine)")
    .addHelpText("after", CONTENTS_HELP + "\n" + NAMES_HELP)
    .action(async (rootArgument: RootArgument, path: string | undefined, opts) => {
      const digest = await resolveRoot(rootArgument, opts.store);
      const pathBytes = path === undefined ? undefined : unescapeName(path);
      const checkContents: boolean = opts.checkContents ?? isLocalStore(opts.store);
      const service = await openStore(opts.store);
      let blobs: BlobService | undefined;
      try {
        if (checkContents) {
          blobs = await openBlobsIfAny(opts.store);
          if (!blobs && opts.checkContents)
            throw new ValidationError(`--check-contents: ${redactUrl(opts.store)} stores no file contents`);
        }
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
            process.stdout.write(`${(await listingLines([node], blobs))[0]}\n`);
            return;
          }
          const child = await service.get(Digest.fromBytes(node.node.digest));
          if (!child)
            throw new NotFoundError(`directory ${Digest.fromBytes(node.node.digest)} is missing from the store`);
          listing = child;
        }
        const lines = await listingLines(directoryNodes(listing), blobs);
        if (lines.length) process.stdout.write(`${lines.join("\n")}\n`);
      } finally {
        await blobs?.close();
        await service.close();
      }
    });
}
