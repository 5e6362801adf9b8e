import { Argument, Command } from "commander";
import { redactUrl, type RootArgument } from "@castore-ts/core";
import { createProgress, humanBytes } from "../progress.js";
import { parseRoot, resolveRoot } from "../roots.js";
import { openBlobsIfAny, openRefServiceIfAny, openRefStoreIfAny, openStore } from "../stores.js";
import { type SyncCounts, type SyncRoot, type SyncSide, syncRoots } from "../sync.js";
import { positiveInt } from "./options.js";

const SYNC_HELP = `
Only what DST lacks is sent. DST is asked which directories it lacks top
down: the root, then the children of each missing one (a stored directory has
its whole tree, so nothing below it is asked about or sent, and its files'
contents are taken to be there: castore verify --blobs checks that). Of the
missing directories' files, blobs DST has (asked in batches) are skipped. The
missing directories go as one partial upload that refers to the stored ones
(the whole tree to a store, or a server, without partial uploads). Blobs go
first, then directories, then refs: stop it anywhere and nothing in DST names
what is missing; run it again to finish. A root named ref:NAME (or every ref, with --all) is set under
the same name in DST once its tree is there.

Examples:
  castore sync lmdb://./castore-data s3://bucket/castore?region=eu-west-1 ref:releases/latest
  castore sync postgres://db/castore lmdb://./mirror --all`;

function collectRoots(text: string, previous: RootArgument[] = []): RootArgument[] {
  return [...previous, parseRoot(text)];
}

/** "1 tree", "2 trees". */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function summary(c: SyncCounts): string {
  const refs = c.refsSet.length > 0 ? `; refs set: ${c.refsSet.join(", ")}` : "";
  const missing =
    c.blobsMissingInSource > 0 ? `; ${count(c.blobsMissingInSource, "blob")} missing from the source too` : "";
  if (c.directoriesSent + c.blobsSent === 0)
    return `sync: nothing to send: the destination holds all of it (${count(c.trees, "tree")}${c.blobsPresent > 0 ? `, ${count(c.blobsPresent, "blob")}` : ""})${refs}${missing}`;
  return (
    `sync: ${count(c.trees, "tree")} (${c.treesPresent} already there); sent ${c.directoriesSent === 1 ? "1 directory" : `${c.directoriesSent} directories`}, ` +
    `${count(c.blobsSent, "blob")} (${humanBytes(c.blobBytesSent)}); ${count(c.blobsPresent, "blob")} already there${refs}${missing}`
  );
}

async function openSide(url: string, withRefs: boolean): Promise<SyncSide> {
  const refs = withRefs ? await openRefServiceIfAny(url) : undefined;
  return { directories: await openStore(url), blobs: await openBlobsIfAny(url), refs };
}

async function closeSide(side: SyncSide): Promise<void> {
  await Promise.all([side.directories.close(), side.blobs?.close(), side.refs?.close()]);
}

/** The roots to copy, resolved in the source: the arguments, and every ref with --all. */
async function sourceRoots(src: string, args: RootArgument[], all: boolean): Promise<SyncRoot[]> {
  const roots: SyncRoot[] = [];
  for (const arg of args) roots.push({ digest: await resolveRoot(arg, src), ref: arg.ref });
  if (all) {
    const refs = await openRefStoreIfAny(src);
    if (!refs) throw new Error(`--all: ${redactUrl(src)} keeps no refs`);
    try {
      for await (const { name, digest } of refs.listRefs()) roots.push({ digest, ref: name });
    } finally {
      await refs.close();
    }
  }
  return roots;
}

export function syncCommand(): Command {
  return new Command("sync")
    .description(
      "Copy trees (directories and file contents) from the store SRC to the store DST, sending only what DST lacks",
    )
    .argument("<src>", "source store URL")
    .argument("<dst>", "destination store URL")
    .addArgument(
      new Argument("[roots...]", "trees to copy: digests (hex or b3:base64) or ref:NAME (the ref is copied too)")
        .argParser(collectRoots)
        .default([], "none: give --all"),
    )
    .option("--all", "every ref of SRC, with its tree")
    .option("--jobs <n>", "blobs copied at once", positiveInt, 4)
    .option("--no-progress", "no progress output")
    .addHelpText("after", SYNC_HELP)
    .action(async (src: string, dst: string, args: RootArgument[], opts) => {
      const roots = await sourceRoots(src, args, opts.all === true);
      if (roots.length === 0) throw new Error("nothing to sync: name roots (DIGEST or ref:NAME), or give --all");
      const controller = new AbortController();
      const interrupt = () => controller.abort(new Error("interrupted"));
      process.once("SIGINT", interrupt);
      process.once("SIGTERM", interrupt);
      const from = await openSide(src, false);
      const to = await openSide(
        dst,
        roots.some((r) => r.ref !== undefined),
      );
      const progress = createProgress("sync", { enabled: opts.progress });
      try {
        const counts = await syncRoots(from, to, roots, {
          concurrency: opts.jobs,
          signal: controller.signal,
          onProgress: (c) =>
            progress.update({
              trees: c.trees,
              "directories sent": c.directoriesSent,
              "blobs sent": c.blobsSent,
              "bytes sent": c.blobBytesSent,
            }),
        });
        progress.stop();
        process.stdout.write(`${summary(counts)}\n`);
      } finally {
        progress.stop();
        process.off("SIGINT", interrupt);
        process.off("SIGTERM", interrupt);
        await Promise.all([closeSide(from), closeSide(to)]);
      }
    });
}
