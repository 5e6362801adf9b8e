/**
 * `castore gc` killed with SIGKILL half way through deleting (spec §10.1: a
 * collection stopped at any point leaves no directory without its closure).
 * A real lmdb store with a kept tree and a large unreferenced one; the
 * collection is killed once its progress says it has deleted some garbage
 * directories and not all; then `castore verify` must find the whole store
 * consistent, and the next collection must finish the work.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import "@castore-ts/backend-lmdb";
import { generateTree } from "@castore-ts/conformance";
import { openDirectoryService } from "@castore-ts/core";
import { runCastore } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

const GARBAGE_DIRECTORIES = 60_000;

let dir: string;
let store: string;
let kept: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "castore-gc-killed-"));
  store = `lmdb://${join(dir, "store")}`;
  const service = await openDirectoryService(store);
  try {
    for (const [directories, seed] of [
      [2_000, 1],
      [GARBAGE_DIRECTORIES, 2],
    ]) {
      const tree = generateTree({ directories, seed });
      const putter = service.putMultipleStart();
      for (const d of tree.directories) await putter.put(d);
      const root = await putter.close();
      if (seed === 1) kept = root.hex;
    }
  } finally {
    await service.close();
  }
}, 240_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `castore gc` and kills it with SIGKILL once a progress line shows 0 < deleted < total directories. */
function gcKilledMidway(): Promise<{ deleted: number; total: number; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CASTORE_BIN, "gc", "--grace", "0", "--keep", kept, "--store", store], {
      env: { ...process.env, CASTORE_PROGRESS_INTERVAL_MS: "0" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    let seen: { deleted: number; total: number } | undefined;
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
      if (seen) return;
      for (const m of err.matchAll(/(\d+) directories deleted, (\d+) directories to delete/g)) {
        const [deleted, total] = [Number(m[1]), Number(m[2])];
        if (deleted > 0 && deleted < total) {
          seen = { deleted, total };
          child.kill("SIGKILL");
          break;
        }
      }
    });
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (!seen) reject(new Error(`castore gc ended (code ${code}) before it was killed half way; stderr:\n${err}`));
      else resolve({ ...seen, signal });
    });
  });
}

describe("castore gc killed half way", () => {
  it("leaves a consistent store, and the next collection finishes", { timeout: 240_000 }, async () => {
    const killed = await gcKilledMidway();
    expect(killed.signal).toBe("SIGKILL");
    expect(killed.total).toBeGreaterThanOrEqual(GARBAGE_DIRECTORIES - 10);

    const verify = await runCastore(CASTORE_BIN, ["verify", store, "--no-progress"]);
    expect(verify.code, verify.stderr.toString()).toBe(0);

    const again = await runCastore(CASTORE_BIN, ["gc", "--grace", "0", "--keep", kept, "--json", "--store", store]);
    expect(again.code, again.stderr.toString()).toBe(0);
    const report = JSON.parse(again.stdout.toString());
    // What the killed run deleted stays deleted; the rest goes now (LMDB deletes a batch in one transaction).
    expect(report.deleted.directory).toBeGreaterThan(0);
    expect(report.deleted.directory).toBeLessThanOrEqual(killed.total - killed.deleted);
    expect(report.live.directory).toBeGreaterThanOrEqual(2_000);

    const after = await runCastore(CASTORE_BIN, ["verify", store, "--no-progress"]);
    expect(after.code, after.stderr.toString()).toBe(0);
    const listed = await runCastore(CASTORE_BIN, ["get", kept, "--recursive", "--store", store]);
    expect(listed.code, listed.stderr.toString()).toBe(0);
    expect(
      listed.stdout
        .toString()
        .split("\n")
        .filter((l) => l.startsWith("directory")).length,
    ).toBe(report.live.directory);
  });
});
