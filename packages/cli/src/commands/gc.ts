import { Command, Option } from "commander";
import {
  type CollectProgress,
  type CollectReport,
  DEFAULT_GRACE_MS,
  type Digest,
  type ObjectKind,
  type RootArgument,
} from "@castore-ts/core";
import { createProgress, humanBytes } from "../progress.js";
import { parseRoot, resolveRoot } from "../roots.js";
import { DEFAULT_STORE, openCollector } from "../stores.js";
import { parseDuration } from "./options.js";

const GC_HELP = `
What stays: everything reachable from a ref or a --keep root (directories,
their files' blobs, the blobs' chunks), and everything written or used within
the grace period, with all it names. The rest is deleted: directories parents
first, then blobs, then chunks, so a collection stopped half way leaves no
directory without its closure. Uploads running meanwhile are safe as long as
each finishes within the grace period (docs/spec.md §10).

Examples:
  castore gc --dry-run                 what would go, with counts and bytes
  castore gc --grace 7d                keep everything used in the last week
  castore gc --keep ref:staging/next   (refs are kept anyway; --keep adds roots)`;

function collectRoots(text: string, previous: RootArgument[] = []): RootArgument[] {
  return [...previous, parseRoot(text)];
}

/** "3 directories, 1 blob, 7 chunks": the report's counts, in words. */
function counts(c: CollectReport["deleted"]): string {
  const n = (k: number, one: string, many: string) => `${k} ${k === 1 ? one : many}`;
  return `${n(c.directory, "directory", "directories")}, ${n(c.blob, "blob", "blobs")}, ${n(c.chunk, "chunk", "chunks")}`;
}

export function summary(report: CollectReport): string {
  const verb = report.dryRun ? "would delete" : "deleted";
  const spared = report.spared > 0 ? `; ${report.spared} spared (used again during the collection)` : "";
  const missing = report.missingRoots.length > 0 ? `; ${report.missingRoots.length} roots name nothing stored` : "";
  return (
    `gc: ${verb} ${counts(report.deleted)} (${humanBytes(report.deletedBytes)}); ` +
    `kept ${counts(report.live)} reachable from ${report.roots} ${report.roots === 1 ? "root" : "roots"} or used since ${new Date(report.cutoff).toISOString()}` +
    spared +
    missing
  );
}

const PLURAL: Record<ObjectKind, string> = { directory: "directories", blob: "blobs", chunk: "chunks" };

function progressCounts(p: CollectProgress, dryRun: boolean): Record<string, number> {
  if (p.phase === "mark") return { "live directories": p.done };
  const kind = PLURAL[p.kind ?? "directory"];
  return { [`${kind} ${dryRun ? "counted" : "deleted"}`]: p.done, [`${kind} to delete`]: p.total ?? 0 };
}

export function gcCommand(): Command {
  return new Command("gc")
    .description("Delete what no ref or --keep root reaches and nobody used within the grace period")
    .addOption(new Option("--store <url>", "store URL").default(DEFAULT_STORE).env("CASTORE_STORE"))
    .addOption(
      new Option("--keep <root>", "also keep this tree or blob: a digest (hex or b3:base64) or ref:NAME; repeatable")
        .argParser(collectRoots)
        .default([], "none"),
    )
    .addOption(
      new Option(
        "--grace <duration>",
        "keep whatever was written or used this recently, reachable or not (0, or e.g. 30m, 1h, 7d)",
      )
        .argParser(parseDuration)
        .default(DEFAULT_GRACE_MS, "1h"),
    )
    .option("--dry-run", "print what would be deleted (counts and bytes); delete nothing")
    .option("--json", "print the report as JSON instead of the summary line")
    .option("--no-progress", "no progress output")
    .addHelpText("after", GC_HELP)
    .action(async (opts) => {
      const keep: Digest[] = [];
      for (const root of opts.keep as RootArgument[]) keep.push(await resolveRoot(root, opts.store));
      const collector = await openCollector(opts.store);
      const progress = createProgress(opts.dryRun ? "gc (dry run)" : "gc", { enabled: opts.progress });
      try {
        const report = await collector.collect({
          keep,
          graceMs: opts.grace,
          dryRun: opts.dryRun === true,
          onProgress: (p) => progress.update(progressCounts(p, opts.dryRun === true)),
        });
        progress.stop();
        process.stdout.write(opts.json ? `${JSON.stringify(reportJson(report))}\n` : `${summary(report)}\n`);
      } finally {
        progress.stop();
        await collector.close();
      }
    });
}

function reportJson(report: CollectReport): unknown {
  return { ...report, missingRoots: report.missingRoots.map((d) => d.hex) };
}
