import { Command, Option } from "commander";
import { redactUrl, type Digest } from "@castore-ts/core";
import { createProgress } from "../progress.js";
import { openBlobs, openStore } from "../stores.js";
import { repairFrom } from "../repair.js";
import {
  type Problem,
  type VerifyOptions,
  type VerifyProgress,
  type VerifyResult,
  verifyRoots,
  verifyStore,
} from "../verify.js";
import { SIZE_CHECK_HELP, parseDigest, parseSizeCheck, positiveInt } from "./options.js";
import { parseRoot, resolveRoot } from "../roots.js";

function formatProblem(p: Problem): string {
  const where = p.path === undefined ? "" : ` at /${p.path}`;
  return `${p.kind} ${p.digest}${where}: ${p.message}`;
}

function summary(url: string, r: VerifyResult): string {
  const blobs = r.blobs === undefined ? "" : `, ${r.blobs} blobs`;
  return `verify ${redactUrl(url)}: ${r.directories} directories${blobs} checked, ${r.problems} problems`;
}

export function verifyCommand(): Command {
  return new Command("verify")
    .description(
      "Check a store: re-hash every directory, check every child directory is present with the declared size. " +
        "Walks the given roots, or every stored directory when none are given (for stores that can list). " +
        "Prints one line per problem on stdout; exits 1 if there is any. " +
        "With --repair FROM, directories found corrupt are fetched from the store FROM (re-hashed and re-validated " +
        "there, and again before writing) and written over the damaged bytes, one `repaired DIGEST` line each; " +
        "then the store is verified again and the exit status is that second verify's. " +
        "Stores that can replace stored bytes: memory, lmdb, postgres, s3 (not grpc: the protocol cannot; not cache://: repair each tier). " +
        "With --blobs, every file's contents too: its blob must be stored with the size the file declares " +
        "(blob-missing, blob-size-mismatch); --rehash reads every blob in full, re-hashing each chunk and the whole " +
        "(blob-corrupt). Each distinct blob is checked once.",
    )
    .argument("<url>", "store URL")
    .argument("[roots...]", "roots to walk: digests (hex or b3:base64) or ref:NAME")
    .addOption(new Option("--size-check <mode>", SIZE_CHECK_HELP).argParser(parseSizeCheck).default("exact"))
    .addOption(new Option("--jobs <n>", "directories read at once").default(16).argParser(positiveInt))
    .option("--repair <from-url>", "replace corrupt directories with correct bytes read from this store")
    .option("--blobs", "also check that every file's blob is stored with its declared size (a stat per distinct blob)")
    .option("--rehash", "with --blobs (implied): read and re-hash every blob")
    .option("--no-progress", "no progress output")
    .action(async (url: string, rootTexts: string[], opts) => {
      const roots: Digest[] = [];
      for (const text of rootTexts) roots.push(await resolveRoot(parseRoot(text), url));
      const service = await openStore(url);
      if (opts.repair !== undefined && !service.repair) {
        await service.close();
        throw new Error(
          `${redactUrl(url)} cannot be repaired: its backend cannot replace stored bytes (see castore verify --help)`,
        );
      }
      const checkBlobs = Boolean(opts.blobs || opts.rehash);
      const blobs = checkBlobs
        ? await openBlobs(url).catch(async (e: unknown) => {
            await service.close();
            throw e;
          })
        : undefined;
      const progress = createProgress("verify", { enabled: opts.progress });
      try {
        const corrupt: Digest[] = [];
        const verifyOpts: VerifyOptions = {
          sizeCheck: opts.sizeCheck,
          concurrency: opts.jobs,
          blobs,
          rehash: Boolean(opts.rehash),
          onProblem: (p: Problem) => {
            if (p.kind === "corrupt") corrupt.push(parseDigest(p.digest));
            process.stdout.write(`${formatProblem(p)}\n`);
          },
          onProgress: (p: VerifyProgress) =>
            progress.update({
              directories: p.directories,
              ...(p.blobs !== undefined ? { blobs: p.blobs } : {}),
              ...(opts.rehash ? { "bytes re-hashed": p.blobBytes ?? 0 } : {}),
              problems: p.problems,
            }),
        };
        const run = (o: VerifyOptions) => (roots.length ? verifyRoots(service, roots, o) : verifyStore(service, o));
        let result = await run(verifyOpts);
        progress.stop();
        process.stderr.write(`${summary(url, result)}\n`);
        if (opts.repair !== undefined && corrupt.length > 0) {
          const from = await openStore(opts.repair);
          let repaired = 0;
          try {
            repaired = await repairFrom(service, from, corrupt.splice(0), {
              onRepaired: (digest) => process.stdout.write(`repaired ${digest}\n`),
              onFailed: (f) => process.stdout.write(`not repaired ${f.digest}: ${f.message}\n`),
            });
          } finally {
            await from.close();
          }
          process.stderr.write(`repaired ${repaired} directories from ${redactUrl(opts.repair)}; verifying again\n`);
          // The second verify also checks what the damaged bytes hid: the sizes their parents declare, their children.
          result = await run({ ...verifyOpts, onProgress: undefined }); // the progress line has ended
          process.stderr.write(`${summary(url, result)}\n`);
        }
        if (result.problems > 0) process.exitCode = 1;
      } finally {
        await Promise.all([service.close(), blobs?.close()]);
      }
    });
}
