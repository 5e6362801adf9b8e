/**
 * An import killed between storing its blobs and committing its directories
 * leaves no directory that names a missing blob (spec §8: blobs are written
 * without a sync each, then made durable by one sync, and only then are the
 * directories committed). A child process runs importTree (from dist/) into
 * an lmdb store with a blob service whose sync() tells this process where it
 * is; this process kills it there with SIGKILL and checks the store.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Digest, blake3, openBlobService, openDirectoryService } from "@castore-ts/core";
import "@castore-ts/backend-lmdb";
import { runCastore } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

const CLI_DIST = fileURLToPath(new URL("../dist", import.meta.url));

/** The child: imports argv's tree into argv's lmdb store; at the blob sync it says "at-sync" and, in mode "hold", waits there. */
const CHILD = `
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
const [cliDist, tree, store, mode] = process.argv.slice(2);
const require = createRequire(cliDist + "/importer.js");
const { importTree } = await import(pathToFileURL(cliDist + "/importer.js").href);
const core = await import(pathToFileURL(require.resolve("@castore-ts/core")).href);
await import(pathToFileURL(require.resolve("@castore-ts/backend-lmdb")).href);
const directories = await core.openDirectoryService(store);
const blobs = await core.openBlobService(store);
const watched = Object.create(blobs);
watched.sync = async (opts) => {
  process.stdout.write("at-sync\\n");
  if (mode === "hold") {
    setInterval(() => {}, 1000);
    await new Promise(() => {});
  }
  await blobs.sync(opts);
  process.stdout.write("synced\\n");
};
const { digest } = await importTree(directories, tree, { blobs: watched });
process.stdout.write("root " + digest.hex + "\\n");
await Promise.all([directories.close(), blobs.close()]);
`;

let dir: string;
let tree: string;
let child: string;
const files = new Map<string, Buffer>();

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-import-crash-"));
  tree = join(dir, "tree");
  for (let d = 0; d < 10; d++) {
    mkdirSync(join(tree, `d${d}`), { recursive: true });
    for (let f = 0; f < 30; f++) {
      const bytes = Buffer.from(`directory ${d} file ${f}\n`.repeat(f * 40 + 1));
      files.set(`d${d}/f${f}`, bytes);
      writeFileSync(join(tree, `d${d}`, `f${f}`), bytes);
    }
  }
  // Larger than the read buffer: written through a blob writer, not a batch.
  const large = Buffer.alloc(3 * 1024 * 1024 + 5);
  for (let i = 0; i < large.length; i++) large[i] = (i * 7 + (i >> 13)) & 0xff;
  files.set("large", large);
  writeFileSync(join(tree, "large"), large);
  child = join(dir, "child.mjs");
  writeFileSync(child, CHILD);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the child until it prints `line`, then kills it (SIGKILL); resolves with what it printed. */
function killAt(store: string, mode: "hold" | "go", line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, CLI_DIST, tree, store, mode], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    proc.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.split("\n").includes(line)) proc.kill("SIGKILL");
    });
    proc.stderr.on("data", (c: Buffer) => (err += c.toString()));
    proc.on("error", reject);
    proc.on("exit", (code, signal) => {
      if (signal === "SIGKILL") resolve(out);
      else reject(new Error(`the child ended (${code ?? signal}) before printing ${line}: ${out}${err}`));
    });
  });
}

async function storedDirectories(store: string): Promise<Digest[]> {
  const service = await openDirectoryService(store);
  try {
    const digests: Digest[] = [];
    for await (const d of service.listDigests!()) digests.push(d);
    return digests;
  } finally {
    await service.close();
  }
}

describe("an import killed between its blobs and its directories", () => {
  it("killed at the blob sync: no directory is stored, and the blobs written are whole", async () => {
    const store = `lmdb://${join(dir, "at-sync")}`;
    await killAt(store, "hold", "at-sync");
    expect(await storedDirectories(store)).toEqual([]);
    // Every file's blob was written before the sync; each reads back whole (verified by the service).
    const blobs = await openBlobService(store);
    try {
      for (const [name, bytes] of files) {
        const stream = await blobs.read(Digest.fromBytes(blake3(bytes)));
        expect(stream, name).toBeDefined();
        const chunks: Uint8Array[] = [];
        for await (const c of stream!) chunks.push(c);
        expect(Buffer.concat(chunks).equals(bytes), name).toBe(true);
      }
    } finally {
      await blobs.close();
    }
  });

  it("killed just after the sync: whatever directories were committed, each names only stored blobs", async () => {
    const store = `lmdb://${join(dir, "after-sync")}`;
    await killAt(store, "go", "synced");
    const verified = await runCastore(CASTORE_CLI, ["verify", store, "--blobs"]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stderr).toMatch(/0 problems/);
  });
});
