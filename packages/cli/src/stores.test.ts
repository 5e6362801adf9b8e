/** The CLI loads a backend package only when a store URL names its scheme (stores.ts). */
import { knownSchemes } from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import { loadBackendsFor, openStore } from "./stores.js";

const schemes = () => knownSchemes().map((s) => s.scheme);

describe("loading backends by store URL", () => {
  it("loads the packages a URL names, those nested in a cache:// URL included, and no other", async () => {
    expect(schemes()).not.toContain("lmdb");
    const url = `cache://?near=${encodeURIComponent("memory://")}&far=${encodeURIComponent("lmdb:///nonexistent/x")}`;
    await loadBackendsFor(url);
    expect(schemes()).toEqual(expect.arrayContaining(["cache", "memory", "lmdb"]));
    for (const other of ["s3", "postgres", "grpc+http"]) expect(schemes()).not.toContain(other);
  });

  it("a scheme no backend has loads them all, so the error lists every scheme", async () => {
    const error = await openStore("nope://somewhere").then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/unknown store URL scheme "nope:"/);
    for (const example of ["s3://", "postgres://", "grpc+http://", "lmdb://", "memory://"])
      expect(error?.message).toContain(example);
  });
});
