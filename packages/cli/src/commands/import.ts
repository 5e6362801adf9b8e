import { Command, Option } from "commander";
import {
  type BlobService,
  type Digest,
  type DirectoryService,
  NotFoundError,
  RefService,
  redactUrl,
} from "@castore-ts/core";
import {
  DEFAULT_SPOOL_MEMORY_BYTES,
  DEFAULT_UPLOAD_CONCURRENCY,
  LOCAL_UPLOAD_CONCURRENCY,
  type ImportProgress,
  importTree,
} from "../importer.js";
import { createProgress, humanBytes } from "../progress.js";
import { closeSharedReadPools } from "../read-pool.js";
import { DEFAULT_STORE, isLocalStore, openBlobs, openBlobsIfAny, openRefsIfAny, openStore } from "../stores.js";
import { parseRefName } from "../roots.js";
import { nonNegativeInt, positiveInt } from "./options.js";

const PROGRESS_INTERVAL_MS = 100;

/** Blob writes in flight by default: many more into a store on this machine (see LOCAL_UPLOAD_CONCURRENCY). */
function uploadConcurrencyFor(store: string): number {
  return isLocalStore(store) ? LOCAL_UPLOAD_CONCURRENCY : DEFAULT_UPLOAD_CONCURRENCY;
}

export function importCommand(): Command {
  return new Command("import")
    .description(
      "Import a directory tree into a store and print its root digest (hex) on stdout. " +
        "File contents are stored as blobs (chunked, deduplicated by chunk), and only those the store lacks are sent: " +
        "a file up to 1 MiB is read once and waits in a batch that asks the store about all its digests at once; a larger " +
        "file is hashed first and read again only when its blob is missing. The last line on stderr says how many blobs " +
        "were uploaded and how many files the store had already. " +
        "--no-contents only hashes them. The tree is walked and its files read first; then the store is asked, top down, which " +
        "directories it lacks (a stored directory holds its whole tree), and the upload, opened only then, sends just those " +
        "back to back as one partial upload (a tvix or snix server gets the whole tree); a remote store's idle timeout " +
        "does not run while files are hashed.",
    )
    .argument("<path>", "directory to import")
    .addOption(new Option("--store <url>", "store URL").default(DEFAULT_STORE).env("CASTORE_STORE"))
    .addOption(
      new Option(
        "--jobs <n>",
        "files read and hashed at once through the thread pool (large files; small ones too when that measures faster than reading them one at a time with sync calls, as on a cold cache)",
      )
        .default(8)
        .argParser(positiveInt),
    )
    .addOption(
      new Option(
        "--upload-jobs <n>",
        "blob writes to the store at once (a batch of small files sent together counts as one); default 256 into a local store (lmdb commits concurrent writes together), 32 into a remote one",
      ).argParser(positiveInt),
    )
    .addOption(
      new Option(
        "--spool-memory <MiB>",
        "encoded directories kept in memory until the upload; beyond this they spill to a temporary file in --spool-dir (0: always)",
      )
        .default(DEFAULT_SPOOL_MEMORY_BYTES / (1024 * 1024))
        .argParser(nonNegativeInt)
        .env("CASTORE_IMPORT_SPOOL_MEMORY"),
    )
    .addOption(
      new Option(
        "--spool-dir <dir>",
        "where the spilled directories go (removed at the end); default: the OS temporary directory ($TMPDIR)",
      ).env("CASTORE_IMPORT_SPOOL_DIR"),
    )
    .option("--no-contents", "store only the directories; file contents are hashed, not stored")
    .option(
      "--ref <name>",
      "after the import, point this ref at the root (castore ref set: the store must hold the whole tree, so not with --no-contents)",
      parseRefName,
    )
    .option("--no-progress", "no progress output")
    .action(async (path: string, opts) => {
      const service = await openStore(opts.store);
      const blobs = opts.contents
        ? await openBlobs(opts.store).catch(async (e: unknown) => {
            await service.close();
            throw e;
          })
        : undefined;
      const progress = createProgress("import", { enabled: opts.progress });
      const controller = new AbortController();
      const onSignal = () => controller.abort(new Error("interrupted"));
      process.once("SIGINT", onSignal);
      // The importer reports every file; drawing the bar that often cost more than the import (about 50 us a call).
      let latest: ImportProgress | undefined;
      let shownAt = -Infinity;
      const show = (force: boolean) => {
        const now = performance.now();
        if (!latest || (!force && now - shownAt < PROGRESS_INTERVAL_MS)) return;
        shownAt = now;
        const p = latest;
        progress.update({
          directories: p.directories,
          files: p.files,
          "bytes hashed": p.bytes,
          ...(p.blobs ? { "bytes uploaded": p.blobs.uploadedBytes, "bytes skipped": p.blobs.skippedBytes } : {}),
          ...(p.uploaded ? { "directories sent": p.uploaded } : {}),
        });
      };
      try {
        const result = await importTree(service, path, {
          concurrency: opts.jobs,
          uploadConcurrency: opts.uploadJobs ?? uploadConcurrencyFor(opts.store),
          spoolMemoryBytes: opts.spoolMemory * 1024 * 1024,
          spoolDir: opts.spoolDir,
          blobs,
          signal: controller.signal,
          onProgress: (p) => {
            latest = p;
            show(false);
          },
        });
        show(true);
        progress.stop();
        process.stderr.write(`${summary(result.progress)}\n`);
        if (opts.ref !== undefined) await setRef(opts.store, service, blobs, opts.ref, result.digest);
        process.stdout.write(`${result.digest.hex}\n`);
      } finally {
        show(true);
        progress.stop();
        process.off("SIGINT", onSignal);
        // This process imports once: its read threads are stopped here, with the main thread fully alive,
        // rather than by process.exit's teardown (the path every castore import took before the pool was
        // shared, and one run of the trees benchmark ended in SIGSEGV without it, not reproduced since).
        await Promise.all([service.close(), blobs?.close(), closeSharedReadPools()]);
      }
    });
}

/** The last line on stderr: what was read, and what was sent to the store or found there already. */
export function summary(p: ImportProgress): string {
  const read = `import: ${p.files} files, ${humanBytes(p.bytes)} hashed, ${p.directories} directories`;
  if (!p.blobs) return `${read}; contents not stored (--no-contents)`;
  const b = p.blobs;
  const sent =
    b.uploaded === 0
      ? "no blob uploaded"
      : `${b.uploaded} blob${b.uploaded === 1 ? "" : "s"} uploaded (${humanBytes(b.uploadedBytes)})`;
  return `${read}; ${sent}, ${b.skipped} file${b.skipped === 1 ? "" : "s"} already stored (${humanBytes(b.skippedBytes)} skipped)`;
}

/** Points `name` at the imported root, through the store's refs (closure checked against the same store). */
async function setRef(
  url: string,
  directories: DirectoryService,
  blobs: BlobService | undefined,
  name: string,
  root: Digest,
): Promise<void> {
  const opened = await openRefsIfAny(url);
  if (!opened) throw new NotFoundError(`--ref ${name}: ${redactUrl(url)} keeps no refs`);
  const { store, protect } = opened;
  // With --no-contents no blob service was opened; the ref's closure check still needs one.
  const checkBlobs = blobs ?? (await openBlobsIfAny(url));
  try {
    await new RefService(store, directories, checkBlobs, { protect }).set(name, root);
  } finally {
    await Promise.all([store.close(), checkBlobs !== blobs ? checkBlobs?.close() : undefined]);
  }
  process.stderr.write(`import: ref ${name} → ${root.hex}\n`);
}
