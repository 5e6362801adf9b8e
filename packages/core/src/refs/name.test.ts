import { describe, expect, it } from "vitest";
import { Digest } from "../digest.js";
import { ValidationError } from "../errors.js";
import { checkRefName, parseRootArgument, REF_NAME_MAX_BYTES } from "./name.js";
import { compareNames, refHolds } from "./memory-ref-store.js";

describe("checkRefName", () => {
  it.each(["a", "releases/2026-12-03", "v1.2.3+build@x=y_z", "a/b/c", "x".repeat(REF_NAME_MAX_BYTES), "..a", "a.."])(
    "accepts %j",
    (name) => expect(checkRefName(name)).toBe(name),
  );

  it.each([
    ["", /empty/],
    ["x".repeat(REF_NAME_MAX_BYTES + 1), /257 characters long, the limit is 256/],
    ["/a", /empty component/],
    ["a/", /empty component/],
    ["a//b", /empty component/],
    ["a/./b", /'\.' component/],
    ["../a", /'\.\.' component/],
    ["sp ace", /contains " "/],
    ["ünï", /contains "ü"/],
    ["nul\0", /contains "\\u0000"/],
  ])("refuses %j with a ValidationError saying why", (name, why) => {
    expect(() => checkRefName(name)).toThrow(ValidationError);
    expect(() => checkRefName(name)).toThrow(why);
  });
});

describe("parseRootArgument", () => {
  const digest = Digest.of(new Uint8Array([1]));
  it("takes ref:NAME as a ref and anything else as a digest", () => {
    expect(parseRootArgument("ref:releases/latest")).toEqual({ ref: "releases/latest" });
    expect(parseRootArgument(digest.hex).digest?.equals(digest)).toBe(true);
  });
  it("checks the name of a ref and the text of a digest", () => {
    expect(() => parseRootArgument("ref:")).toThrow(ValidationError);
    expect(() => parseRootArgument("ref:a//b")).toThrow(/empty component/);
    expect(() => parseRootArgument("releases/latest")).toThrow(/digest/);
  });
});

describe("refHolds and the listing order", () => {
  const a = Digest.of(new Uint8Array([1]));
  const b = Digest.of(new Uint8Array([2]));
  it("undefined expects anything, null expects no ref, a digest expects that digest", () => {
    expect([refHolds(undefined, undefined), refHolds(a, undefined)]).toEqual([true, true]);
    expect([refHolds(undefined, null), refHolds(a, null)]).toEqual([true, false]);
    expect([refHolds(a, a), refHolds(b, a), refHolds(undefined, a)]).toEqual([true, false, false]);
  });
  it("orders names by bytes ('-' before '/' before letters)", () => {
    expect(["a/b", "a", "a-c", "B", "a/a"].sort(compareNames)).toEqual(["B", "a", "a-c", "a/a", "a/b"]);
  });
});
