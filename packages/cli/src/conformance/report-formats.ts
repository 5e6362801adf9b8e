/**
 * The machine-readable forms of a conformance report: one JSON document, and
 * JUnit XML so a third party's CI shows each scenario as a test case.
 */
import type { ConformanceReport, ScenarioResult } from "@castore-ts/conformance";

export interface JsonReport {
  target: string;
  results: { id: string; title: string; status: ScenarioResult["status"]; message: string | null; ms: number }[];
  passed: number;
  failed: number;
  skipped: number;
}

export function jsonReport(report: ConformanceReport): JsonReport {
  return {
    target: report.backend,
    results: report.results.map((r) => ({
      id: r.id,
      title: r.title,
      status: r.status,
      message: r.message ?? null,
      ms: r.ms,
    })),
    passed: report.passed,
    failed: report.failed,
    skipped: report.skipped,
  };
}

/** Text for XML attributes and content: the five special characters, and the control characters XML 1.0 forbids. */
export function escapeXml(text: string): string {
  return text
    .replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!)
    .replace(
      /[^\t\n\r\u0020-\ufffd\u{10000}-\u{10ffff}]/gu,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
    );
}

/** One <testsuite> named after the target; one <testcase> per scenario, its classname the id's module. */
export function junitXml(report: ConformanceReport): string {
  const seconds = (ms: number) => (ms / 1000).toFixed(3);
  const total = report.results.reduce((sum, r) => sum + r.ms, 0);
  const lines = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="castore conformance" tests="${report.results.length}" failures="${report.failed}" skipped="${report.skipped}" time="${seconds(total)}">`,
    `  <testsuite name="${escapeXml(report.backend)}" tests="${report.results.length}" failures="${report.failed}" errors="0" skipped="${report.skipped}" time="${seconds(total)}">`,
  ];
  for (const r of report.results) {
    const module = r.id.split(".")[0];
    const open = `    <testcase classname="${escapeXml(module)}" name="${escapeXml(`${r.id}: ${r.title}`)}" time="${seconds(r.ms)}"`;
    const message = r.message ?? "";
    if (r.status === "pass") lines.push(`${open}/>`);
    else if (r.status === "skip")
      lines.push(`${open}>`, `      <skipped message="${escapeXml(message)}"/>`, "    </testcase>");
    else {
      const first = message.split("\n")[0];
      lines.push(
        `${open}>`,
        `      <failure message="${escapeXml(first)}">${escapeXml(message)}</failure>`,
        "    </testcase>",
      );
    }
  }
  lines.push("  </testsuite>", "</testsuites>", "");
  return lines.join("\n");
}
