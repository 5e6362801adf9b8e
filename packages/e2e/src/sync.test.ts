/**
 * `castore sync` end to end (issue 22), through the built command between
 * real stores: lmdb → S3, lmdb → PostgreSQL → lmdb, and lmdb → `castore
 * serve` (gRPC). Each copy is checked by reading the files back from the
 * destination and by `castore verify --blobs`; a second run sends nothing and
 * says so; a run killed half way (SIGKILL) and run again completes.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type PostgresTestServer,
  type S3TestServer,
  runCastore,
  startCastoreServe,
  startPostgresTestServer,
  startS3TestServer,
} from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

let dir: string;
let source: string;
let root: string;
const big = randomBytes(3 * 1024 * 1024 + 11);

async function castore(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = await runCastore(CASTORE_BIN, args, { timeoutMs: 300_000 });
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** The destination holds the tree: its files read back, its ref, and verify finds every blob. */
async function expectCopied(dst: string, verifiable = true): Promise<void> {
  expect((await castore("ref", "get", "docs/tree", "--store", dst)).stdout.trim()).toBe(root);
  const cat = await runCastore(CASTORE_BIN, ["cat", "ref:docs/tree", "data/big.bin", "--store", dst]);
  expect(Buffer.compare(cat.stdout, big)).toBe(0);
  expect((await castore("cat", root, "bin/run.sh", "--store", dst)).stdout).toBe("#!/bin/sh\necho run\n");
  if (verifiable) {
    const verify = await castore("verify", dst, "--blobs", "--no-progress");
    expect(verify.code, verify.stderr).toBe(0);
  }
}

async function syncTwice(src: string, dst: string): Promise<void> {
  const first = await castore("sync", src, dst, "ref:docs/tree", "--no-progress");
  expect(first.code, first.stderr).toBe(0);
  expect(first.stdout, first.stdout).toMatch(
    /^sync: 1 tree \(0 already there\); sent \d+ directories, \d+ blobs \(3\.0 MiB\)/,
  );
  const again = await castore("sync", src, dst, "ref:docs/tree", "--no-progress");
  expect(again.code, again.stderr).toBe(0);
  expect(again.stdout).toMatch(/^sync: nothing to send: the destination holds all of it \(1 tree\)/);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "castore-sync-e2e-"));
  const tree = join(dir, "tree");
  mkdirSync(join(tree, "data", "deeper"), { recursive: true });
  mkdirSync(join(tree, "bin"));
  writeFileSync(join(tree, "data", "big.bin"), big);
  writeFileSync(join(tree, "data", "deeper", "small.txt"), "small\n");
  writeFileSync(Buffer.concat([Buffer.from(join(tree, "data") + "/"), Buffer.from([0x6e, 0xff])]), "not UTF-8\n");
  writeFileSync(join(tree, "bin", "run.sh"), "#!/bin/sh\necho run\n");
  chmodSync(join(tree, "bin", "run.sh"), 0o755);
  symlinkSync("data/deeper/small.txt", join(tree, "link"));
  source = `lmdb://${join(dir, "source")}`;
  const imported = await castore("import", tree, "--store", source, "--ref", "docs/tree", "--no-progress");
  expect(imported.code, imported.stderr).toBe(0);
  root = imported.stdout.trim();
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("castore sync between stores", () => {
  it("lmdb → castore serve (gRPC)", { timeout: 300_000 }, async () => {
    const served = `lmdb://${join(dir, "served")}`;
    const server = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", served]);
    try {
      await syncTwice(source, server.url);
      await expectCopied(server.url, false); // verify takes the store itself:
    } finally {
      expect(await server.stop()).toBe(0);
    }
    await expectCopied(served);
  });

  describe("with S3 and PostgreSQL", () => {
    let pg: PostgresTestServer;
    let s3: S3TestServer;
    let bucket: string;
    beforeAll(async () => {
      [pg, s3] = await Promise.all([startPostgresTestServer(), startS3TestServer()]);
      bucket = await s3.createBucket();
    }, 180_000);
    afterAll(async () => {
      await Promise.allSettled([pg?.stop(), s3?.stop()]);
    });

    it("lmdb → S3", { timeout: 300_000 }, async () => {
      const url =
        `s3://${encodeURIComponent(s3.accessKeyId)}:${encodeURIComponent(s3.secretAccessKey)}@${bucket}/sync` +
        `?endpoint=${encodeURIComponent(s3.endpoint)}&region=${s3.region}&forcePathStyle=true`;
      await syncTwice(source, url);
      await expectCopied(url);
    });

    it("lmdb → PostgreSQL → lmdb", { timeout: 300_000 }, async () => {
      const u = new URL(pg.url);
      // A schema of its own: a server shared by earlier runs may hold one of the same name, half filled.
      u.searchParams.set("schema", `sync_e2e_${randomBytes(4).toString("hex")}`);
      await syncTwice(source, u.toString());
      await expectCopied(u.toString());
      const back = `lmdb://${join(dir, "back")}`;
      await syncTwice(u.toString(), back);
      await expectCopied(back);
    });
  });

  it("a run killed half way, run again, completes", { timeout: 300_000 }, async () => {
    // Many blobs, so that progress is reported between batches of them.
    const many = join(dir, "many");
    mkdirSync(many);
    for (let i = 0; i < 2500; i++) writeFileSync(join(many, `f${i}`), `file ${i}\n`);
    const imported = await castore("import", many, "--store", source, "--ref", "docs/many", "--no-progress");
    expect(imported.code, imported.stderr).toBe(0);
    const dst = `lmdb://${join(dir, "killed")}`;
    const killed = await new Promise<NodeJS.Signals | null>((resolve, reject) => {
      const child = spawn(process.execPath, [CASTORE_BIN, "sync", source, dst, "ref:docs/many"], {
        env: { ...process.env, CASTORE_PROGRESS_INTERVAL_MS: "0" },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let err = "";
      child.stderr!.on("data", (c: Buffer) => {
        err += c.toString();
        if (/[1-9]\d* blobs sent/.test(err)) child.kill("SIGKILL");
      });
      child.once("error", reject);
      child.once("exit", (_code, signal) =>
        signal ? resolve(signal) : reject(new Error(`sync ended before the kill:\n${err}`)),
      );
    });
    expect(killed).toBe("SIGKILL");
    expect((await castore("ref", "get", "docs/many", "--store", dst)).code).toBe(1); // the ref comes last
    const again = await castore("sync", source, dst, "ref:docs/many", "--no-progress");
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/sent 1 directory, \d+ blobs .*; [1-9]\d* blobs already there; refs set: docs\/many/);
    const verify = await castore("verify", dst, "--blobs", "--no-progress");
    expect(verify.code, verify.stderr).toBe(0);
  });
});
