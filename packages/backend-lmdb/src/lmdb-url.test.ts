import { InvalidUrlError } from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import { parseLmdbUrl } from "./lmdb-url.js";

const cwd = "/srv/work";

describe("parseLmdbUrl", () => {
  it.each([
    ["lmdb:///var/lib/castore", "/var/lib/castore"],
    ["lmdb://./castore-data", "/srv/work/castore-data"],
    ["lmdb://./a/b/", "/srv/work/a/b"],
    ["lmdb://.", "/srv/work"],
    ["lmdb://../other", "/srv/other"],
    ["lmdb:relative/dir", "/srv/work/relative/dir"],
    ["lmdb:./relative", "/srv/work/relative"],
    ["lmdb:/abs/short", "/abs/short"],
    ["LMDB:///upper/Case", "/upper/Case"],
    ["lmdb:///with%20space/x.db", "/with space/x.db"],
  ])("%s → %s", (url, path) => {
    expect(parseLmdbUrl(url, cwd)).toEqual({ path, options: {} });
  });

  it("keeps .. segments only in the short form (URL parsing folds them in lmdb://./…)", () => {
    expect(parseLmdbUrl("lmdb:../../x", cwd).path).toBe("/x");
    expect(parseLmdbUrl("lmdb://./../x", cwd).path).toBe("/srv/work/x");
  });

  it("reads mapSize and noSync", () => {
    expect(parseLmdbUrl("lmdb://./d?mapSize=1GiB&noSync=true", cwd).options).toEqual({
      mapSize: 2 ** 30,
      noSync: true,
    });
    expect(parseLmdbUrl("lmdb://./d?mapSize=1048576&noSync=0", cwd).options).toEqual({
      mapSize: 2 ** 20,
      noSync: false,
    });
    expect(parseLmdbUrl("lmdb://./d?mapSize=4G", cwd).options).toEqual({ mapSize: 4 * 2 ** 30 });
    expect(parseLmdbUrl("lmdb://./d?noSync", cwd).options).toEqual({ noSync: true });
  });

  it("accepts a URL object", () => {
    expect(parseLmdbUrl(new URL("lmdb:///x"), cwd).path).toBe("/x");
  });

  it.each([
    ["lmdb://", /no path/],
    ["lmdb:", /no path/],
    ["lmdb://host/path", /would be a host; write lmdb:\/\/\/host\/path .* or lmdb:\/\/\.\/host\/path/],
    ["lmdb://./d?mapsize=1", /unknown option "mapsize" \(known: mapSize, noSync\)/],
    ["lmdb://./d?mapSize=lots", /mapSize="lots" is not a positive size/],
    ["lmdb://./d?mapSize=0", /not a positive size/],
    ["lmdb://./d?noSync=maybe", /noSync="maybe" is not a boolean/],
    ["lmdb://./d#frag", /fragment/],
    ["lmdb://user:pw@./d", /user, password and port/],
    ["lmdb:///a%00b", /NUL/],
    ["memory://", /not "lmdb:"/],
  ])("rejects %s", (url, message) => {
    expect(() => parseLmdbUrl(url, cwd)).toThrow(InvalidUrlError);
    expect(() => parseLmdbUrl(url, cwd)).toThrow(message);
  });

  it("names the URL and the accepted forms in errors", () => {
    expect(() => parseLmdbUrl("lmdb://", cwd)).toThrow(
      /"lmdb:\/\/".*expected lmdb:\/\/\/abs\/path or lmdb:\/\/\.\/relative/,
    );
  });
});
