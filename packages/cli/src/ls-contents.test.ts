/**
 * `castore ls` marks files whose contents the store does not hold as the
 * directory says: by default on a store on this machine, on any store with
 * --check-contents, never with --no-check-contents.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Digest, makeDirectory, makeFileNode, openBlobService, openDirectoryService } from "@castore-ts/core";
import { LmdbBlobStore } from "@castore-ts/backend-lmdb";
import { runCastore, startCastoreServe } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

let dir: string;
let tree: string;
let store: string;
/** The tree's root, imported with --no-contents into `store`. */
let root: string;

async function ls(...args: string[]): Promise<string> {
  const r = await runCastore(CASTORE_CLI, ["ls", ...args]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.toString();
}

/** The listing's lines that carry a contents note, as "name note". */
function noted(listing: string): string[] {
  return listing
    .trim()
    .split("\n")
    .flatMap((line) => {
      const m = /^\S+ +\d+ \S+ (.*) (\(contents .*\))$/.exec(line);
      return m ? [`${m[1]} ${m[2]}`] : [];
    });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "castore-ls-contents-"));
  tree = join(dir, "tree");
  mkdirSync(join(tree, "sub"), { recursive: true });
  writeFileSync(join(tree, "hello.txt"), "hello\n");
  writeFileSync(join(tree, "same.txt"), "hello\n"); // the same blob twice: asked about once, marked twice
  writeFileSync(join(tree, "empty"), ""); // the empty blob: present in every store
  writeFileSync(join(tree, "sub", "deep"), "deep");
  store = `lmdb://${join(dir, "store")}`;
  const r = await runCastore(CASTORE_CLI, ["import", tree, "--no-contents", "--no-progress", "--store", store]);
  expect(r.code, r.stderr).toBe(0);
  root = r.stdout.toString().trim();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("castore ls: files' contents", () => {
  it("marks each file whose contents are not stored, on a local store by default", async () => {
    expect(noted(await ls(root, "--store", store))).toEqual([
      "hello.txt (contents not stored)",
      "same.txt (contents not stored)",
    ]);
    expect(await ls(root, "sub/deep", "--store", store)).toMatch(/ deep \(contents not stored\)\n$/);
  });

  it("--no-check-contents lists without asking", async () => {
    expect(noted(await ls(root, "--store", store, "--no-check-contents"))).toEqual([]);
  });

  it("over gRPC, checks only with --check-contents (a Stat per blob)", async () => {
    const sock = join(dir, "serve.sock");
    const server = await startCastoreServe(CASTORE_CLI, ["--listen", `unix:${sock}`, "--store", store]);
    try {
      const remote = `grpc+unix://${sock}`;
      expect(noted(await ls(root, "--store", remote))).toEqual([]);
      expect(noted(await ls(root, "--store", remote, "--check-contents"))).toEqual([
        "hello.txt (contents not stored)",
        "same.txt (contents not stored)",
      ]);
    } finally {
      expect(await server.stop("SIGTERM")).toBe(0);
    }
  });

  it("no mark once the contents are imported", async () => {
    const r = await runCastore(CASTORE_CLI, ["import", tree, "--no-progress", "--store", store]);
    expect(r.stdout.toString().trim()).toBe(root);
    expect(noted(await ls(root, "--store", store))).toEqual([]);
    expect(noted(await ls(root, "sub", "--store", store))).toEqual([]);
  });

  it("names the stored size when it is not the size the directory declares", async () => {
    const url = `lmdb://${join(dir, "sizes")}`;
    const blobs = await openBlobService(url);
    const writer = blobs.openWriter();
    await writer.write(Buffer.from("hello"));
    const { digest } = await writer.close();
    await blobs.close();
    const service = await openDirectoryService(url);
    const wrong = makeDirectory({ files: [makeFileNode("f", digest.bytes, 99, false)] });
    const listed = await service.put(wrong);
    await service.close();
    expect(noted(await ls(listed.hex, "--store", url))).toEqual(["f (contents stored with 5 bytes)"]);
  });

  it("names a blob whose stored chunk list is damaged, and lists the other files", async () => {
    const path = join(dir, "damaged");
    const url = `lmdb://${path}`;
    const blobs = await openBlobService(url);
    const writer = blobs.openWriter();
    await writer.write(randomBytes(1 << 20)); // several chunks: a stored list names them
    const { digest, size } = await writer.close();
    await blobs.close();
    const store = LmdbBlobStore.open(path);
    await store.manifests.put(digest.bytes, new Uint8Array(5)); // not a whole number of chunk records
    await store.close();
    const service = await openDirectoryService(url);
    const listed = await service.put(
      makeDirectory({
        files: [makeFileNode("big", digest, size), makeFileNode("gone", Digest.of(Buffer.from("gone")), 4)],
      }),
    );
    await service.close();
    expect(noted(await ls(listed.hex, "--store", url))).toEqual([
      expect.stringMatching(/^big \(contents corrupt: .*5 bytes, not a whole number of 36-byte chunk records\)$/),
      "gone (contents not stored)",
    ]);
  });
});
