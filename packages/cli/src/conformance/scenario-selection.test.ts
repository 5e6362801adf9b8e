/** `castore conformance --filter X --skip Y…`: which scenarios run. */
import { describe, expect, it } from "vitest";
import { scenarios } from "@castore-ts/conformance";
import { scenarioSelection } from "../commands/conformance.js";

function selectedIds(filter: string | undefined, skip: string[]): string[] {
  const selection = scenarioSelection(filter, skip);
  if (selection === undefined) return scenarios.map((s) => s.id);
  if (typeof selection !== "function") throw new Error(`expected a predicate, got ${String(selection)}`);
  return scenarios.filter((s) => selection(s)).map((s) => s.id);
}

describe("scenarioSelection", () => {
  it("without --skip is --filter as before: an id prefix, a title regex, or everything", () => {
    expect(scenarioSelection(undefined, [])).toBeUndefined();
    expect(scenarioSelection("closure.", [])).toBe("closure.");
    expect(scenarioSelection("^§7\\.4 ", [])).toEqual(/^§7\.4 /);
  });

  it("--skip leaves out every id it prefixes, repeatable", () => {
    const ids = selectedIds(undefined, ["scale.", "abort.get-recursive"]);
    expect(ids).toEqual(
      scenarios.map((s) => s.id).filter((id) => !id.startsWith("scale.") && id !== "abort.get-recursive"),
    );
    expect(ids.length).toBeGreaterThan(30);
  });

  it("--skip narrows --filter, by id prefix or by title regex", () => {
    const closure = scenarios.filter((s) => s.id.startsWith("closure.")).map((s) => s.id);
    expect(selectedIds("closure.", ["closure.dangling-child"])).toEqual(
      closure.filter((id) => id !== "closure.dangling-child"),
    );
    expect(selectedIds("^§7\\.1[0-2] ", ["validation."])).toEqual(["closure.wrong-size", "uploads.empty-and-closed"]);
  });
});
