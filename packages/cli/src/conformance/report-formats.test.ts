import { describe, expect, it } from "vitest";
import type { ConformanceReport } from "@castore-ts/conformance";
import { escapeXml, jsonReport, junitXml } from "./report-formats.js";

const report: ConformanceReport = {
  backend: 'grpc+http://h:1/?a=1&b="2"',
  results: [
    { id: "uploads.absent", title: "§7.1 get → undefined", status: "pass", ms: 3 },
    {
      id: "closure.dangling-child",
      title: "§7.4 upload [B] <fails>",
      status: "fail",
      message: `x: expected ClosureError (code "CLOSURE") & 'more'\nsecond line \u0001`,
      ms: 12,
    },
    {
      id: "corruption.wrong-digest",
      title: "§7.14 corruption",
      status: "skip",
      message: 'capability "corruption" not supported',
      ms: 0,
    },
  ],
  passed: 1,
  failed: 1,
  skipped: 1,
};

/** Every element of the XML, as [name, attributes] in document order; throws on text the escaping should have removed. */
function elements(xml: string): [string, Record<string, string>][] {
  const body = xml.replace(/^<\?xml [^?]*\?>\n/, "");
  const out: [string, Record<string, string>][] = [];
  for (const m of body.matchAll(/<([a-z]+)((?:\s+[a-z]+="[^"<&]*(?:&(?:amp|lt|gt|quot|apos);[^"<&]*)*")*)\s*\/?>/g)) {
    const attrs: Record<string, string> = {};
    for (const a of m[2].matchAll(/([a-z]+)="([^"]*)"/g)) attrs[a[1]] = a[2];
    out.push([m[1], attrs]);
  }
  const stripped = body.replace(/<\/?[a-z][^>]*>/g, "");
  if (/[<>]|&(?!(?:amp|lt|gt|quot|apos);)/.test(stripped)) throw new Error(`unescaped text: ${stripped}`);
  return out;
}

describe("conformance report formats", () => {
  it("JSON: target, results with id and title, totals", () => {
    expect(jsonReport(report)).toEqual({
      target: report.backend,
      results: [
        { id: "uploads.absent", title: "§7.1 get → undefined", status: "pass", message: null, ms: 3 },
        {
          id: "closure.dangling-child",
          title: "§7.4 upload [B] <fails>",
          status: "fail",
          message: report.results[1].message,
          ms: 12,
        },
        {
          id: "corruption.wrong-digest",
          title: "§7.14 corruption",
          status: "skip",
          message: 'capability "corruption" not supported',
          ms: 0,
        },
      ],
      passed: 1,
      failed: 1,
      skipped: 1,
    });
  });

  it("JUnit: one testcase per scenario, classname the module, failure and skipped elements, all escaped", () => {
    const xml = junitXml(report);
    const els = elements(xml);
    expect(els.map(([name]) => name)).toEqual([
      "testsuites",
      "testsuite",
      "testcase",
      "testcase",
      "failure",
      "testcase",
      "skipped",
    ]);
    expect(els[1][1]).toMatchObject({
      name: "grpc+http://h:1/?a=1&amp;b=&quot;2&quot;",
      tests: "3",
      failures: "1",
      skipped: "1",
    });
    expect(els.filter(([n]) => n === "testcase").map(([, a]) => a.classname)).toEqual([
      "uploads",
      "closure",
      "corruption",
    ]);
    expect(els[3][1].name).toBe("closure.dangling-child: §7.4 upload [B] &lt;fails&gt;");
    expect(els[4][1].message).toBe("x: expected ClosureError (code &quot;CLOSURE&quot;) &amp; &apos;more&apos;");
    expect(xml).not.toContain("\u0001");
    expect(xml.match(/<testcase /g)).toHaveLength(3);
    expect(xml.match(/<\/testcase>/g)).toHaveLength(2);
  });

  it("escapes the five XML characters and the control characters XML forbids", () => {
    expect(escapeXml(`<a href="x">&'\u0000\t\n`)).toBe("&lt;a href=&quot;x&quot;&gt;&amp;&apos;\\u0000\t\n");
  });
});
