import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidUrlError } from "./errors.js";
import { knownSchemes, openDirectoryService, redactUrl, registerDirectoryServiceScheme } from "./registry.js";
import { mapService } from "./test-memory-store.js";

describe("openDirectoryService", () => {
  registerDirectoryServiceScheme("testmap", "testmap://", () => mapService().service);
  registerDirectoryServiceScheme("grpc+test", "grpc+test://host:port", (url) => {
    expect(url.hostname).toBe("h");
    expect(url.port).toBe("9");
    return mapService().service;
  });

  it("opens a registered scheme, case-insensitively, and passes the parsed URL", async () => {
    expect(await openDirectoryService("testmap://")).toBeDefined();
    expect(await openDirectoryService("TESTMAP://")).toBeDefined();
    expect(await openDirectoryService("grpc+test://h:9")).toBeDefined();
    expect(knownSchemes().map((s) => s.scheme)).toContain("testmap");
  });
  it("an unknown scheme is an InvalidUrlError listing the known schemes", async () => {
    await expect(openDirectoryService("ftp://x")).rejects.toThrow(InvalidUrlError);
    await expect(openDirectoryService("ftp://x")).rejects.toThrow(
      /unknown store URL scheme "ftp:" .*known: .*testmap:\/\//,
    );
  });
  it("a malformed URL is an InvalidUrlError listing the known schemes", async () => {
    for (const bad of ["", "not a url", "/var/lib/castore", "://x"]) {
      await expect(openDirectoryService(bad)).rejects.toThrow(/malformed store URL .*known: /);
    }
  });
  it("never shows a password in messages", async () => {
    await expect(openDirectoryService("pg://u:hunter2@h/db")).rejects.not.toThrow(/hunter2/);
    expect(redactUrl("postgres://u:hunter2@h:5432/db")).toBe("postgres://u:***@h:5432/db");
    expect(redactUrl("s3://b/p?secretKey=abc&region=x")).not.toContain("abc");
    const nested = `cache://?near=${encodeURIComponent("memory://")}&far=${encodeURIComponent("grpc+http://h:1?token=s3cr3t")}`;
    expect(redactUrl(nested)).not.toContain("s3cr3t");
    expect(decodeURIComponent(redactUrl(nested))).toContain("grpc+http://h:1?token=***");
    expect(redactUrl("memory://")).toBe("memory://");
  });
});

describe("redactUrl with passwords holding reserved characters", () => {
  /** RFC 3986's gen-delims and sub-delims, and the percent sign. */
  const RESERVED = [..."%:/?#[]@!$&'()*+,;="];
  /** Passwords of uppercase runs and reserved characters: the URLs around them have no uppercase letter. */
  const password = fc
    .array(fc.oneof(fc.stringMatching(/^[A-Z]{1,6}$/), fc.constantFrom(...RESERVED)), { minLength: 1, maxLength: 12 })
    .map((parts) => `P${parts.join("")}`);
  /** Store URLs with the password where a user would paste it; `shown` must stay visible. */
  const urls = (pw: string): { url: string; shown?: string }[] => [
    { url: `postgres://alice:${pw}@db.example:5432/castore?schema=castore`, shown: "db.example:5432/castore" },
    { url: `postgres://alice:${pw}@db.example/castore`, shown: "db.example/castore" },
    { url: `s3://akid:${pw}@bucket/prefix?region=eu-west-1`, shown: "bucket/prefix" },
    { url: `grpc+http://token:${pw}@127.0.0.1:8000`, shown: "127.0.0.1:8000" },
    { url: `cache://?near=memory%3a%2f%2f&far=${encodeURIComponent(`postgres://alice:${pw}@db/x`)}` },
    { url: `cache://?near=memory://&far=postgres://alice:${pw}@db/x` },
  ];
  /** Uppercase letters the output shows, percent-escapes aside: any is a piece of the password. */
  const leaked = (out: string) => out.replace(/%[0-9a-f]{2}/gi, "").match(/[A-Z]+/g) ?? [];

  it("never shows any piece of the password, whether the URL parses or not", () => {
    fc.assert(
      fc.property(password, (pw) => {
        for (const { url, shown } of urls(pw)) {
          const out = redactUrl(url);
          expect({ url, out, leaked: leaked(out) }).toEqual({ url, out, leaked: [] });
          if (shown) expect(out).toContain(shown);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("hides the cases found by hand", () => {
    expect(redactUrl("postgres://alice:ab+c/d==@db.example:5432/castore")).toBe(
      "postgres://***@db.example:5432/castore",
    );
    expect(redactUrl("postgres://alice:p@ss#word@db/castore")).toBe("postgres://***@db/castore");
    expect(redactUrl("postgres://alice:12/ss@db/castore")).toBe("postgres://***@db/castore");
    expect(redactUrl("s3://k:se/cret@bucket/p?sessionToken=abc&region=x")).toBe(
      "s3://***@bucket/p?sessionToken=***&region=x",
    );
  });

  it("still redacts secret options of a URL that does not parse", () => {
    expect(redactUrl("postgres://[db/castore?password=hunter2")).toBe("postgres://[db/castore?password=***");
  });
});
