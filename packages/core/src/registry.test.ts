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
    await expect(openDirectoryService("ftp://x")).rejects.toThrow(/unknown store URL scheme "ftp:" .*known: .*testmap:\/\//);
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
