import { describe, expect, it } from "vitest";
import { InvalidUrlError } from "./errors.js";
import { parseBooleanOption, readStoreUrl } from "./store-url.js";

describe("parseBooleanOption", () => {
  const fail = (why: string) => new InvalidUrlError(`bad URL: ${why}`);

  it("reads the true and false spellings in any case; a bare option is true", () => {
    for (const v of ["", "1", "true", "TRUE", "yes", "Yes"]) expect(parseBooleanOption("x", v, fail)).toBe(true);
    for (const v of ["0", "false", "False", "no", "NO"]) expect(parseBooleanOption("x", v, fail)).toBe(false);
  });

  it("rejects anything else through the caller's error", () => {
    expect(() => parseBooleanOption("noSync", "maybe", fail)).toThrow(InvalidUrlError);
    expect(() => parseBooleanOption("noSync", "maybe", fail)).toThrow(
      'bad URL: noSync="maybe" is not a boolean (true or false)',
    );
  });
});

describe("readStoreUrl", () => {
  const fail = (text: string, why: string) => new InvalidUrlError(`bad URL ${text}: ${why}`);

  it("returns the URL and its text, from a string or a URL", () => {
    expect(readStoreUrl("LMDB:///x?a=1", "lmdb:", fail).url.pathname).toBe("/x");
    expect(readStoreUrl(new URL("lmdb:///x"), "lmdb:", fail).text).toBe("lmdb:///x");
  });

  it("fails text that is no URL, another scheme, or one with a #fragment", () => {
    expect(() => readStoreUrl("not a url", "lmdb:", fail)).toThrow("bad URL not a url: malformed URL");
    expect(() => readStoreUrl("s3://b", "lmdb:", fail)).toThrow('scheme is "s3:", not "lmdb:"');
    expect(() => readStoreUrl("lmdb:///x#y", "lmdb:", fail)).toThrow("a #fragment has no meaning here");
  });
});
