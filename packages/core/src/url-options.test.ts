import { describe, expect, it } from "vitest";
import { InvalidUrlError } from "./errors.js";
import { parseBooleanOption } from "./url-options.js";

describe("parseBooleanOption", () => {
  const fail = (why: string) => new InvalidUrlError(`bad URL: ${why}`);

  it("reads the true and false spellings in any case; a bare option is true", () => {
    for (const v of ["", "1", "true", "TRUE", "yes", "Yes"]) expect(parseBooleanOption("x", v, fail)).toBe(true);
    for (const v of ["0", "false", "False", "no", "NO"]) expect(parseBooleanOption("x", v, fail)).toBe(false);
  });

  it("rejects anything else through the caller's error", () => {
    expect(() => parseBooleanOption("noSync", "maybe", fail)).toThrow(InvalidUrlError);
    expect(() => parseBooleanOption("noSync", "maybe", fail)).toThrow('bad URL: noSync="maybe" is not a boolean (true or false)');
  });
});
