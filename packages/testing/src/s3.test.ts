import { GetObjectCommand, ListBucketsCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startS3TestServer, type S3TestServer } from "./index.js";

describe("startS3TestServer", () => {
  let server: S3TestServer;
  let client: S3Client;

  beforeAll(async () => {
    server = await startS3TestServer();
    client = new S3Client(server.clientConfig());
    console.log(`[s3.test] kind=${server.kind} endpoint=${server.endpoint}`);
  }, 180_000);

  afterAll(async () => {
    client?.destroy();
    await server?.stop();
  }, 60_000);

  it("describes the server it started", () => {
    expect(server.region).toBe("us-east-1");
    if (server.kind !== "env") {
      expect(server.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      if (!server.image?.includes("minio")) {
        expect(server.accessKeyId).toBe("S3RVER");
        expect(server.secretAccessKey).toBe("S3RVER");
      }
    }
  });

  it("creates a bucket and round-trips an object", async () => {
    // Named by the test, but unique: an env server (CASTORE_TEST_S3_URL) keeps the buckets of earlier runs.
    const name = `castore-roundtrip-${Date.now().toString(36)}`;
    const bucket = await server.createBucket(name);
    expect(bucket).toBe(name);
    const body = new Uint8Array(70_000).map((_, i) => (i * 7) & 0xff);
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: "dir/blob.bin", Body: body }));
    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: "dir/blob.bin" }));
    expect(Buffer.from(await got.Body!.transformToByteArray())).toEqual(Buffer.from(body));
    const { Buckets } = await client.send(new ListBucketsCommand({}));
    expect(Buckets?.map((b) => b.Name)).toContain(bucket);
  });

  it("creates uniquely named buckets", async () => {
    const a = await server.createBucket();
    const b = await server.createBucket();
    expect(a).not.toBe(b);
  });

  it("keeps its buckets across restart()", async (ctx) => {
    if (!server.canRestart) return ctx.skip("the S3 server from $CASTORE_TEST_S3_URL is not ours to restart");
    const bucket = await server.createBucket();
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: "k", Body: "kept" }));
    await server.restart();
    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: "k" }));
    expect(await got.Body!.transformToString()).toBe("kept");
  }, 120_000);
});
