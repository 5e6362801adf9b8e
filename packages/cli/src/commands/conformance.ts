import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { Command, InvalidArgumentError, Option } from "commander";
import {
  type ConformanceReport,
  runConformance,
  type ScenarioFilter,
  type ScenarioResult,
} from "@castore-ts/conformance";
import { grpcCodeOf, transportFailureOf } from "@castore-ts/backend-grpc";
import {
  type BlobService,
  Digest,
  RefService,
  type RefStore,
  redactUrl,
  supportsPartialUploads,
} from "@castore-ts/core";
import { openBlobsIfAny, openRefStoreIfAny, openRefsIfAny, openStore } from "../stores.js";
import { jsonReport, junitXml } from "../conformance/report-formats.js";
import { probeTypedErrors } from "../conformance/typed-errors-probe.js";
import { SIZE_CHECK_HELP, parseDigest, parseSizeCheck } from "./options.js";

function row(r: ScenarioResult): string {
  const status = r.status === "pass" ? "PASS" : r.status === "fail" ? "FAIL" : "SKIP";
  const detail = r.message ? `  ${r.message.split("\n")[0]}` : "";
  return `${status}  ${String(Math.round(r.ms)).padStart(6)} ms  [${r.id}] ${r.title}${detail}`;
}

/** A --root value: a digest, or an error commander reports with the option's name. */
function parseDigestOption(text: string): Digest {
  try {
    return parseDigest(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** An id or id prefix (lowercase, dots, dashes) selects by id; anything else is a regex on the title. */
export function parseFilter(value: string): ScenarioFilter {
  return /^[a-z0-9.-]+$/.test(value) ? value : new RegExp(value);
}

/** --filter (one id, id prefix or title regex) and --skip (ids or id prefixes to leave out) as one filter. */
export function scenarioSelection(filter: string | undefined, skip: string[]): ScenarioFilter | undefined {
  if (skip.length === 0) return filter === undefined ? undefined : parseFilter(filter);
  const byTitle = filter !== undefined && typeof parseFilter(filter) !== "string" ? new RegExp(filter) : undefined;
  const selected = (s: { id: string; name: string }) =>
    filter === undefined || (byTitle ? byTitle.test(s.name) : s.id.startsWith(filter));
  return (s) => selected(s) && !skip.some((prefix) => s.id.startsWith(prefix));
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** typedErrors for the target: forced by --typed-errors / --no-typed-errors, else probed (not with --read-only). */
async function decideTypedErrors(
  url: string,
  opts: { typedErrors?: boolean; readOnly?: boolean },
): Promise<true | string> {
  if (opts.typedErrors === true) return true;
  if (opts.typedErrors === false) return "--no-typed-errors was given";
  if (opts.readOnly) return "--read-only: no probe upload, so error classes are not checked";
  const service = await openStore(url);
  try {
    return await probeTypedErrors(service);
  } finally {
    await service.close();
  }
}

/**
 * Whether the blob.* scenarios run: the URL's scheme must store blobs, and a
 * server must offer a BlobService. Probed with one has() (a gRPC Stat of a
 * digest nobody stores); only UNIMPLEMENTED means "no BlobService": any other
 * failure is left to the scenarios to report.
 */
const GRPC_UNIMPLEMENTED = 12;

async function decideBlobs(url: string): Promise<true | string> {
  let blobs: BlobService | undefined;
  try {
    blobs = await openBlobsIfAny(url);
    if (!blobs) return "the URL's scheme stores no blobs";
    await blobs.has([Digest.of(randomBytes(32))]); // not the empty blob: a client answers that without a call
    return true;
  } catch (e) {
    if (grpcCodeOf(e) === GRPC_UNIMPLEMENTED) return "the server offers no BlobService (UNIMPLEMENTED)";
    return true;
  } finally {
    await blobs?.close();
  }
}

/** Whether the refs.* scenarios can run: the scheme keeps refs and (a server) answers castore.refs.v1 calls. */
async function decideRefs(url: string): Promise<true | string> {
  let refs: RefStore | undefined;
  try {
    refs = await openRefStoreIfAny(url);
    if (!refs) return "the URL's scheme stores no refs";
    await refs.getRef(`conformance/probe-${randomBytes(6).toString("hex")}`);
    return true;
  } catch (e) {
    const cause = (e as { cause?: unknown }).cause;
    if (grpcCodeOf(cause ?? e) === GRPC_UNIMPLEMENTED)
      return "the server offers no refs service (castore.refs.v1: UNIMPLEMENTED; tvix and snix have none)";
    return true;
  } finally {
    await refs?.close();
  }
}

/** Whether the partial.* scenarios can run: the store (a server: through castore.sync.v1) says it takes partial uploads. */
async function decidePartial(url: string): Promise<true | string> {
  const service = await openStore(url, {});
  try {
    return (await supportsPartialUploads(service))
      ? true
      : "the store does not take partial uploads (spec §3.6; a server: castore.sync.v1 absent or says no; tvix and snix have none)";
  } catch {
    return true; // the server could not be asked (gone, refusing): the scenarios run, and fail saying why
  } finally {
    await service.close();
  }
}

const HELP = `
Typed-error detection: before the scenarios, one deliberately invalid upload
(directory B without its child A) probes the server. When its rejection carries
castore's castore-error-code trailer (a castore server), error classes are
checked (ValidationError, ClosureError, …). Otherwise (tvix, snix, a server in
another language) any rejection counts, whatever its status (INVALID_ARGUMENT,
INTERNAL, UNKNOWN, …): only that the call fails and nothing is stored is checked.
--typed-errors / --no-typed-errors skip the probe and force the choice. Either
way a transport failure (UNAVAILABLE, DEADLINE_EXCEEDED, a reset connection) is
never a rejection: the scenario fails, saying the server went away.

Blobs: the blob.* scenarios run when the URL's scheme stores blobs and the
server answers BlobService calls (probed with one Stat; UNIMPLEMENTED skips
them, saying so). blob.large (1 GiB) runs only with --large-blobs. The refs.*
scenarios run likewise when the server answers castore's refs extension
service (castore.refs.v1); tvix and snix servers have none.

Scenario ids: every line shows the scenario's stable id, e.g.
  FAIL      3 ms  [closure.dangling-child] §7.4 upload [B] → …
--filter takes an id (closure.dangling-child) or an id prefix (closure.),
or else a regular expression matched against the titles ('^§7\\.1[0-2] ').
--skip (repeatable) leaves out an id or every id it prefixes: --skip scale.
runs without the large trees (about 15 s instead of a minute).

Read-only runs against a production server: --read-only uploads nothing, so
without roots only uploads.absent runs (and blob.empty, where the store keeps
blobs). Give --root DIGEST (repeatable) for
directories the server already holds: the roots.* scenarios then read each
root's closure and check every directory received (it hashes to a digest that
was asked for or referred to, it is valid, it arrives root to leaves and once,
every declared size is within 2·n + s, the closure is complete), and that get
and traversal agree with it. A legacy size (above the canonical n + s, at most
2·n + s, as older snix wrote) is a note on roots.closure, not a failure:
  castore conformance grpc+http://prod:8000 --read-only --root b3:… --json

Declared sizes: a server's size check is unknown to this command, so a
legacy-sized upload (closure.legacy-sizes) may be accepted or rejected, and the
note says which; --size-check exact|snix-compat says what the server does, and
the scenario then requires it. Out-of-range sizes must always be rejected. The
store is opened with that mode (default snix-compat): for a server, this
client's re-check of what getRecursive receives; for a local store URL
(memory://, lmdb://, …), also the check of its uploads.

Reports for CI: --json prints one JSON document instead of the lines:
  { target, results: [{ id, title, status, message, ms }], passed, failed, skipped }
--junit FILE also writes JUnit XML: one testcase per scenario, classname the
id's module (closure, uploads, …), with <failure> or <skipped>.
`;

export function conformanceCommand(): Command {
  return new Command("conformance")
    .description(
      "Run the conformance suite against a store URL, e.g. a running server (grpc+http://host:port, any castore or tvix/snix server). " +
        "Uploads test fixtures; scenarios that need fault injection are reported as skipped. Exits 1 on any failure.",
    )
    .argument("<url>", "store URL to test")
    .option("--read-only", "do not upload: run only scenarios that read (with --root: those of the roots)")
    .option(
      "--root <digest>",
      "a directory the store already holds (hex or b3:base64; repeatable): the roots.* scenarios check its closure",
      (text: string, roots: Digest[] | undefined) => [...(roots ?? []), parseDigestOption(text)],
    )
    .addOption(
      new Option("--size-check <mode>", `the server's size check, if known: ${SIZE_CHECK_HELP}`).argParser(
        parseSizeCheck,
      ),
    )
    .addOption(
      new Option(
        "--filter <id-or-regex>",
        "run only scenarios with this id or id prefix (closure.), or whose title matches the regex",
      ),
    )
    .option(
      "--skip <id>",
      "leave out the scenario with this id, or every id it prefixes (scale.); repeatable",
      collect,
      [],
    )
    .option("--typed-errors", "check error classes without probing the server")
    .option("--no-typed-errors", "never check error classes: any rejection that is not a transport failure counts")
    .option("--large-blobs", "also run blob.large: a 1 GiB blob in and out (minutes over a network)")
    .option("--json", "print one JSON report instead of a line per scenario")
    .option("--junit <file>", "also write the results as JUnit XML to FILE")
    .addHelpText("after", HELP)
    .action(async (url: string, opts) => {
      const typedErrors = await decideTypedErrors(url, opts);
      const blobs = await decideBlobs(url);
      const refsCapability = await decideRefs(url);
      const partialUpload = await decidePartial(url);
      const report: ConformanceReport = await runConformance(
        {
          name: redactUrl(url),
          factory: async () => {
            // Without --size-check, reads accept every size snix accepts: the scenarios judge
            // sizes themselves (a legacy one is a note in roots.closure).
            const service = await openStore(url, { sizeCheck: opts.sizeCheck ?? "snix-compat" });
            const blobService = blobs === true ? await openBlobsIfAny(url) : undefined;
            const opened = refsCapability === true ? await openRefsIfAny(url) : undefined;
            const refs = opened
              ? new RefService(opened.store, service, blobService, { protect: opened.protect })
              : undefined;
            return {
              service,
              blobs: blobService,
              refs,
              teardown: async () => {
                await Promise.all([service.close(), blobService?.close(), refs?.close()]);
              },
            };
          },
          roots: opts.root,
          sizeCheck: opts.sizeCheck,
          transportFailure: transportFailureOf,
          capabilities: {
            corruption: "a store opened by URL offers no way to inject corrupt bytes",
            blobCorruption: "a store opened by URL offers no way to inject corrupt bytes",
            isolated: "every scenario opens the same URL, so they share one store",
            gc: "a collection with no grace would delete what others stored; run castore gc where the store is (the gc.* scenarios need a store of their own)",
            blobs,
            refs: refsCapability,
            partialUpload,
            largeBlobs: opts.largeBlobs ? true : "a 1 GiB blob only with --large-blobs",
            breadthFirst: "a server may yield any root-to-leaves order (spec §3.2: castore over S3, tvix, snix)",
            typedErrors,
            ...(opts.readOnly ? { write: "--read-only was given" } : {}),
          },
        },
        {
          filter: scenarioSelection(opts.filter, opts.skip),
          onResult: opts.json ? undefined : (r) => process.stdout.write(`${row(r)}\n`),
        },
      );
      if (opts.junit) writeFileSync(opts.junit, junitXml(report));
      if (opts.json) process.stdout.write(`${JSON.stringify(jsonReport(report), null, 2)}\n`);
      else {
        if (typedErrors !== true) process.stdout.write(`\nerror classes not checked: ${typedErrors}\n`);
        process.stdout.write(
          `\n${report.backend}: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped\n`,
        );
      }
      if (report.failed > 0) process.exitCode = 1;
    });
}
