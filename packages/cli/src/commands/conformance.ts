import { Command, Option } from "commander";
import { runConformance, type ScenarioResult } from "@castore/conformance";
import { redactUrl } from "@castore/core";
import { openStore } from "../stores.js";

function row(r: ScenarioResult): string {
  const status = r.status === "pass" ? "PASS" : r.status === "fail" ? "FAIL" : "SKIP";
  const detail = r.message ? `  ${r.message.split("\n")[0]}` : "";
  return `${status}  ${String(Math.round(r.ms)).padStart(6)} ms  ${r.scenario}${detail}`;
}

export function conformanceCommand(): Command {
  return new Command("conformance")
    .description(
      "Run the conformance suite against a store URL, e.g. a running server (grpc+http://host:port, any castore or tvix/snix server). " +
        "Uploads test fixtures; scenarios that need fault injection are reported as skipped. Exits 1 on any failure.",
    )
    .argument("<url>", "store URL to test")
    .option("--read-only", "do not upload: run only scenarios that read")
    .addOption(new Option("--filter <regex>", "run only scenarios whose name matches"))
    .action(async (url: string, opts) => {
      const report = await runConformance(
        {
          name: redactUrl(url),
          factory: async () => {
            const service = await openStore(url);
            return { service, teardown: () => service.close() };
          },
          capabilities: {
            corruption: "a store opened by URL offers no way to inject corrupt bytes",
            isolated: "every scenario opens the same URL, so they share one store",
            breadthFirst: "a server may yield any root-to-leaves order (spec §3.2: castore over S3, tvix, snix)",
            ...(opts.readOnly ? { write: "--read-only was given" } : {}),
          },
        },
        {
          filter: opts.filter ? new RegExp(opts.filter) : undefined,
          onResult: (r) => process.stdout.write(`${row(r)}\n`),
        },
      );
      process.stdout.write(
        `\n${report.backend}: ${report.passed} passed, ${report.failed} failed, ${report.skipped} skipped\n`,
      );
      if (report.failed > 0) process.exitCode = 1;
    });
}
