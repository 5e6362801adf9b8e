/**
 * Whole trees in and out through the built `castore` command (issue 18): a
 * real temporary tree with every kind of entry castore keeps is imported with
 * its contents and exported again, and the two trees are compared by walking
 * both (names as bytes, file bytes, permission bits, symlink targets). On
 * lmdb, through `castore serve` (gRPC, over a memory store), on PostgreSQL
 * and on S3 (their test servers as the other e2e tests start them: from
 * CASTORE_TEST_POSTGRES_URL / CASTORE_TEST_S3_URL, a container, or local
 * binaries). `cat` prints a file's bytes. An export killed half way
 * (SIGKILL, SIGINT) leaves nothing at DEST.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  type Stats,
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
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
  waitFor,
} from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const NON_UTF8 = Buffer.from([0x6e, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e]); // "n\xff\xfe.bin"

let dir: string;
let tree: string;
let big: Buffer;

/** Builds the tree: every kind of entry, the chunking boundaries, a 50 MiB file. */
function makeTree(root: string): void {
  mkdirSync(join(root, "a", "b", "c"), { recursive: true });
  mkdirSync(join(root, "bin"));
  mkdirSync(join(root, "void")); // empty directory
  mkdirSync(join(root, "a", "b", "void-too")); // the same empty directory, deeper
  writeFileSync(join(root, "a", "b", "c", "deep.txt"), "deep\n");
  writeFileSync(join(root, "bin", "run.sh"), "#!/bin/sh\necho run\n");
  chmodSync(join(root, "bin", "run.sh"), 0o755);
  writeFileSync(join(root, "empty"), "");
  writeFileSync(Buffer.concat([Buffer.from(join(root, "a") + "/"), NON_UTF8]), "a name that is not UTF-8\n");
  symlinkSync("a/b/c/deep.txt", join(root, "link-in")); // inside the tree
  symlinkSync("../bin", join(root, "a", "up")); // to a directory inside
  symlinkSync("/etc/hostname", join(root, "link-out")); // outside, absolute
  symlinkSync("../../outside/x", join(root, "a", "link-out-rel")); // outside, relative
  symlinkSync("does/not/exist", join(root, "dangling"));
  symlinkSync(
    Buffer.from([0x74, 0xff]),
    Buffer.concat([Buffer.from(join(root, "a") + "/"), Buffer.from("bytes-target")]),
  );
  // sizes at the boundaries: chunks (snix: 128 KiB min, 512 KiB max) and the importer's 1 MiB read buffer
  for (const size of [128 * KiB, 512 * KiB, 1 * MiB]) writeFileSync(join(root, `exact-${size}`), randomBytes(size));
  writeFileSync(join(root, "dup-of-deep.txt"), "deep\n");
  big = randomBytes(50 * MiB);
  writeFileSync(join(root, "big.bin"), big);
}

/** Names in a directory as bytes, sorted. */
function names(path: Buffer): Buffer[] {
  return (readdirSync(path, { encoding: "buffer" }) as Buffer[]).sort(Buffer.compare);
}

function kind(st: Stats): string {
  return st.isDirectory() ? "directory" : st.isFile() ? "file" : st.isSymbolicLink() ? "symlink" : "other";
}

/** Walks both trees and throws (with the path) at the first difference. */
function compareTrees(a: Buffer, b: Buffer, below = ""): number {
  const left = names(a);
  const right = names(b);
  expect(
    right.map((n) => n.toString("hex")),
    `entries of /${below}`,
  ).toEqual(left.map((n) => n.toString("hex")));
  let entries = 0;
  for (const name of left) {
    const pa = Buffer.concat([a, Buffer.from("/"), name]);
    const pb = Buffer.concat([b, Buffer.from("/"), name]);
    const where = `/${below}${below ? "/" : ""}${name.toString("latin1")}`;
    const sa = lstatSync(pa);
    const sb = lstatSync(pb);
    expect(kind(sb), where).toBe(kind(sa));
    entries++;
    if (sa.isSymbolicLink()) {
      expect(readlinkSync(pb, { encoding: "buffer" }).toString("hex"), where).toBe(
        readlinkSync(pa, { encoding: "buffer" }).toString("hex"),
      );
      continue;
    }
    expect((sb.mode & 0o777).toString(8), where).toBe((sa.mode & 0o777).toString(8));
    if (sa.isDirectory()) entries += compareTrees(pa, pb, where.slice(1));
    else {
      expect(sb.size, where).toBe(sa.size);
      expect(readFileSync(pb).equals(readFileSync(pa)), `${where}: bytes`).toBe(true);
    }
  }
  return entries;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-e2e-trees-"));
  tree = join(dir, "tree");
  mkdirSync(tree);
  makeTree(tree);
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Imports the tree into `store`, exports it to a new path, compares; returns the root digest. */
async function roundTrip(store: string, label: string): Promise<string> {
  const imported = await runCastore(CASTORE_BIN, ["import", tree, "--store", store, "--no-progress"], {
    timeoutMs: 300_000,
  });
  expect(imported.code, imported.stderr).toBe(0);
  const root = imported.stdout.toString().trim();
  expect(root).toMatch(/^[0-9a-f]{64}$/);
  const out = join(dir, `out-${label}`);
  const exported = await runCastore(CASTORE_BIN, ["export", root, out, "--store", store, "--no-progress"], {
    timeoutMs: 300_000,
  });
  expect(exported.code, exported.stderr).toBe(0);
  expect(compareTrees(Buffer.from(tree), Buffer.from(out))).toBe(21);
  rmSync(out, { recursive: true, force: true });
  return root;
}

describe("import → export gives the same tree", () => {
  let root: string;
  const lmdb = () => `lmdb://${join(dir, "lmdb")}`;

  it("on lmdb; cat prints a file's bytes", { timeout: 300_000 }, async () => {
    root = await roundTrip(lmdb(), "lmdb");
    const cat = await runCastore(CASTORE_BIN, ["cat", root, "big.bin", "--store", lmdb()], { timeoutMs: 120_000 });
    expect(cat.code, cat.stderr).toBe(0);
    expect(cat.stdout.equals(big)).toBe(true);
    const named = await runCastore(CASTORE_BIN, ["cat", root, "a/n\\xff\\xfe.bin", "--store", lmdb()]);
    expect(named.stdout.toString()).toBe("a name that is not UTF-8\n");
    const verify = await runCastore(CASTORE_BIN, ["verify", lmdb(), root, "--rehash", "--no-progress"], {
      timeoutMs: 120_000,
    });
    expect(verify.code, verify.stdout.toString()).toBe(0);
  });

  it("through castore serve (gRPC, over memory://)", { timeout: 300_000 }, async () => {
    const server = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", "memory://"]);
    try {
      const served = await roundTrip(server.url, "grpc");
      expect(root === undefined || served === root).toBe(true);
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  describe("on PostgreSQL", () => {
    let pg: PostgresTestServer;
    beforeAll(async () => {
      pg = await startPostgresTestServer();
    }, 180_000);
    afterAll(async () => {
      await pg?.stop();
    });
    it("round trip", { timeout: 300_000 }, async () => {
      const u = new URL(pg.url);
      u.searchParams.set("schema", "trees_e2e");
      await roundTrip(u.toString(), "postgres");
    });
  });

  describe("on S3", () => {
    let s3: S3TestServer;
    let bucket: string;
    beforeAll(async () => {
      s3 = await startS3TestServer();
      bucket = await s3.createBucket();
    }, 180_000);
    afterAll(async () => {
      await s3?.stop();
    });
    it("round trip", { timeout: 300_000 }, async () => {
      const url =
        `s3://${encodeURIComponent(s3.accessKeyId)}:${encodeURIComponent(s3.secretAccessKey)}@${bucket}/trees` +
        `?endpoint=${encodeURIComponent(s3.endpoint)}&region=${s3.region}&forcePathStyle=true`;
      await roundTrip(url, "s3");
    });
  });
});

describe("an export killed half way leaves nothing at DEST", () => {
  let store: string;
  let root: string;
  beforeAll(async () => {
    store = `lmdb://${join(dir, "kill-store")}`;
    const r = await runCastore(CASTORE_BIN, ["import", tree, "--store", store, "--no-progress"], {
      timeoutMs: 300_000,
    });
    expect(r.code, r.stderr).toBe(0);
    root = r.stdout.toString().trim();
  }, 300_000);

  /**
   * Starts an export (one file at a time, big.bin first) and resolves once
   * big.bin is partly written in the temporary sibling: the export is then
   * half way, with most of 50 MiB still to write.
   */
  async function exportHalfWay(parent: string): Promise<{ child: ChildProcess; exited: Promise<number | null> }> {
    mkdirSync(parent);
    const child = spawn(
      process.execPath,
      [CASTORE_BIN, "export", root, join(parent, "dest"), "--store", store, "--jobs", "1", "--no-progress"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    let done = false;
    void exited.then(() => (done = true));
    await waitFor(() => {
      if (done) throw new Error(`export ended before it was half way: ${stderr}`);
      const tmp = readdirSync(parent).find((n) => n.startsWith(".dest.castore-export-"));
      if (!tmp) return false;
      try {
        const size = statSync(join(parent, tmp, "big.bin")).size;
        return size > 0 && size < big.length;
      } catch {
        return false;
      }
    }, "big.bin partly written in the export's temporary directory");
    return { child, exited };
  }

  it("SIGKILL: DEST absent (the temporary sibling stays, hidden)", { timeout: 120_000 }, async () => {
    const parent = join(dir, "killed");
    const { child, exited } = await exportHalfWay(parent);
    child.kill("SIGKILL");
    expect(await exited).toBe(null);
    expect(existsSync(join(parent, "dest"))).toBe(false);
    expect(readdirSync(parent).every((n) => n.startsWith(".dest.castore-export-"))).toBe(true);
  });

  it("SIGINT: DEST absent and the temporary tree removed; exit status 1", { timeout: 120_000 }, async () => {
    const parent = join(dir, "interrupted");
    const { child, exited } = await exportHalfWay(parent);
    const stderr: string[] = [];
    child.stderr!.on("data", (c: Buffer) => stderr.push(c.toString()));
    child.kill("SIGINT");
    expect(await exited).toBe(1);
    expect(stderr.join("")).toContain("castore: interrupted");
    expect(readdirSync(parent)).toEqual([]);
  });
});
