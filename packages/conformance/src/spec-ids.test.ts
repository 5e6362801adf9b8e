/**
 * docs/spec.md §7.1 lists the suite's scenarios by their stable identifier;
 * this keeps that list and `scenarios` equal, so neither can drift. A
 * scenario's identifier is its `id` (types.ts: unique, stable, dotted).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { Scenario } from "./types.js";
import { rootScenarios, scenarios } from "./scenarios/index.js";

const SPEC = new URL("../../../docs/spec.md", import.meta.url);
const BEGIN = "<!-- scenario-list:begin -->";
const END = "<!-- scenario-list:end -->";

function scenarioId(s: Scenario): string {
  return s.id;
}

/** The identifiers the spec lists: the first `code span` of each "- " line between the markers. */
function listedIds(spec: string): string[] {
  const start = spec.indexOf(BEGIN);
  const end = spec.indexOf(END);
  if (start < 0 || end < start) throw new Error(`docs/spec.md has no ${BEGIN} … ${END} section`);
  const ids: string[] = [];
  for (const line of spec.slice(start + BEGIN.length, end).split("\n")) {
    if (!line.startsWith("- ")) continue;
    const m = /^- `([^`]+)`/.exec(line);
    if (!m) throw new Error(`docs/spec.md scenario list: an entry without a \`code span\` identifier: ${line}`);
    ids.push(m[1]);
  }
  return ids;
}

describe("docs/spec.md scenario list", () => {
  const listed = listedIds(readFileSync(SPEC, "utf8"));
  const defined = [...scenarios, ...rootScenarios].map(scenarioId);

  it("lists each scenario once", () => {
    const twice = listed.filter((id, i) => listed.indexOf(id) !== i);
    expect(twice).toEqual([]);
  });

  it("lists exactly the scenarios the suite defines", () => {
    const inSpec = new Set(listed);
    const inSuite = new Set(defined);
    expect({
      "defined by the suite, missing from docs/spec.md": defined.filter((id) => !inSpec.has(id)),
      "listed in docs/spec.md, not defined by the suite": listed.filter((id) => !inSuite.has(id)),
    }).toEqual({
      "defined by the suite, missing from docs/spec.md": [],
      "listed in docs/spec.md, not defined by the suite": [],
    });
  });
});
