import { describe, expect, it } from "vitest";
import { ValidationError } from "./errors.js";
import * as fixtures from "./fixtures.js";
import { directorySize } from "./model.js";
import { classifyDeclaredSize, declaredSizeAccepted, parseSizeCheck, sizeRangeOf } from "./size-check.js";

describe("declared sizes (spec §1.1)", () => {
  it("the range of a directory is n + s ..= 2·n + s, s from the sizes it declares", () => {
    expect(sizeRangeOf(fixtures.DIRECTORY_A)).toEqual({ canonical: 0n, legacyMax: 0n });
    expect(sizeRangeOf(fixtures.DIRECTORY_COMPLICATED)).toEqual({ canonical: 4n, legacyMax: 7n });
    // COMPLICATED_LEGACY declares 2 for `keep`: s = 2.
    expect(sizeRangeOf(fixtures.DIRECTORY_COMPLICATED_LEGACY)).toEqual({ canonical: 5n, legacyMax: 8n });
    expect(sizeRangeOf(fixtures.DIRECTORY_NESTED).canonical).toBe(directorySize(fixtures.DIRECTORY_NESTED));
  });
  it("classifies a declared size against the range", () => {
    const range = sizeRangeOf(fixtures.DIRECTORY_COMPLICATED);
    expect([3n, 4n, 5n, 7n, 8n].map((d) => classifyDeclaredSize(d, range))).toEqual([
      "too-small",
      "canonical",
      "legacy",
      "legacy",
      "too-large",
    ]);
  });
  it("exact accepts only the canonical size; snix-compat the whole range", () => {
    const range = sizeRangeOf(fixtures.DIRECTORY_COMPLICATED);
    expect([4n, 7n, 8n].map((d) => declaredSizeAccepted(d, range, "exact"))).toEqual([true, false, false]);
    expect([4n, 7n, 8n].map((d) => declaredSizeAccepted(d, range, "snix-compat"))).toEqual([true, true, false]);
  });
  it("the fixtures declare what their comments say", () => {
    const [legacyNode] = fixtures.DIRECTORY_NESTED_LEGACY.directories;
    expect(classifyDeclaredSize(legacyNode.size, sizeRangeOf(fixtures.DIRECTORY_COMPLICATED_LEGACY))).toBe("legacy");
    expect(legacyNode.size).toBe(sizeRangeOf(fixtures.DIRECTORY_COMPLICATED_LEGACY).legacyMax);
    const [keep] = fixtures.DIRECTORY_COMPLICATED_OVERSIZED.directories;
    expect(classifyDeclaredSize(keep.size, sizeRangeOf(fixtures.DIRECTORY_WITH_KEEP))).toBe("too-large");
  });
  it("parses the two modes; anything else (the old at-least) is a ValidationError naming them", () => {
    expect(parseSizeCheck("exact")).toBe("exact");
    expect(parseSizeCheck("snix-compat")).toBe("snix-compat");
    expect(() => parseSizeCheck("at-least")).toThrow(ValidationError);
    expect(() => parseSizeCheck("at-least")).toThrow(/invalid size check "at-least": expected exact or snix-compat/);
  });
});
