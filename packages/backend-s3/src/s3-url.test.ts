import { InvalidUrlError } from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import { parseS3Url } from "./s3-url.js";

describe("parseS3Url", () => {
  it("reads bucket and prefix; AWS defaults without an endpoint", () => {
    expect(parseS3Url("s3://my-bucket")).toEqual({ bucket: "my-bucket", prefix: "", forcePathStyle: false, retry: {} });
    expect(parseS3Url("s3://my-bucket/").prefix).toBe("");
    expect(parseS3Url("s3://my-bucket/a/b").prefix).toBe("a/b/");
    expect(parseS3Url("s3://my-bucket//a/b//").prefix).toBe("a/b/");
    expect(parseS3Url("s3://my-bucket/with%20space").prefix).toBe("with space/");
  });

  it("reads endpoint, region, forcePathStyle (default true with an endpoint) and tuning options", () => {
    const u = parseS3Url(
      "s3://b1/p?endpoint=http://127.0.0.1:9000/&region=eu-central-1&concurrency=8&maxAttempts=3&conditionalWrites=false",
    );
    expect(u).toMatchObject({
      bucket: "b1",
      prefix: "p/",
      endpoint: "http://127.0.0.1:9000",
      region: "eu-central-1",
      forcePathStyle: true,
      concurrency: 8,
      retry: { maxAttempts: 3 },
      conditionalWrites: false,
    });
    expect(parseS3Url("s3://b1?endpoint=https%3A%2F%2Fs3.example.org&forcePathStyle=false").forcePathStyle).toBe(false);
    expect(parseS3Url("s3://b1?forcePathStyle=true").forcePathStyle).toBe(true);
    expect(parseS3Url("s3://b1?conditionalWrites=auto").conditionalWrites).toBe("auto");
  });

  it("takes credentials from the user info, percent-decoded", () => {
    const u = parseS3Url("s3://AKID:se%2Fcr%40et@bucket/p?sessionToken=tok");
    expect(u.credentials).toEqual({ accessKeyId: "AKID", secretAccessKey: "se/cr@et", sessionToken: "tok" });
  });

  it.each([
    ["s3://", /no bucket/],
    ["s3://bucket:9000/p", /port/],
    ["s3://bucket/p#frag", /fragment/],
    ["s3://bucket?endpoint=ftp://x", /http/],
    ["s3://bucket?endpoint=nope", /not a URL/],
    ["s3://bucket?concurrency=0", /concurrency/],
    ["s3://bucket?maxAttempts=x", /maxAttempts/],
    ["s3://bucket?forcePathStyle=maybe", /boolean/],
    ["s3://bucket?colour=blue", /unknown option "colour" \(known: endpoint, region/],
    ["s3://AKID@bucket", /user info/],
    ["s3://bucket?sessionToken=t", /sessionToken needs credentials/],
    ["lmdb://bucket", /not "s3:"/],
  ])("rejects %s", (url, why) => {
    expect(() => parseS3Url(url)).toThrow(InvalidUrlError);
    expect(() => parseS3Url(url)).toThrow(why);
  });

  it("never puts the secret into an error message", () => {
    for (const url of [
      "s3://AKID:topsecret@bucket?colour=1",
      "s3://AKID:topsecret@bucket:1",
      "s3://AKID:topsecret@bucket?sessionToken=t0psecret&x=1",
    ]) {
      let message = "";
      try {
        parseS3Url(url);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).not.toBe("");
      expect(message).not.toContain("topsecret");
      expect(message).not.toContain("t0psecret");
    }
  });
});
