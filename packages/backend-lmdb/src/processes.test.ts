/**
 * One LMDB file, several processes: concurrent writers and a reader stay
 * consistent, and a writer killed with SIGKILL mid-upload leaves no partial
 * closure. The other processes run test/upload-loop.mjs against dist/.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Digest, directoryDigest, fixtures } from "@castore-ts/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LmdbDirectoryService } from "./index.js";
import { checkStoreInChild, checkWholeStore, ensureBuilt, startUploadLoop, type UploadChild } from "./test-child.js";

let dir: string;
const children: UploadChild[] = [];

beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), "castore-lmdb-proc-"));
});
afterAll(() => {
  for (const c of children) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function countRecursive(service: LmdbDirectoryService, root: string): Promise<number> {
  let n = 0;
  for await (const _ of service.getRecursive(Digest.parse(root))) n++;
  return n;
}

describe("several processes on one store", () => {
  it("two writer processes upload overlapping trees while this process reads each closure as it lands", async () => {
    const path = join(dir, "shared");
    const reader = await LmdbDirectoryService.open(path);
    const reads: Promise<void>[] = [];
    const seen: { root: string; expected: number; got: number }[] = [];
    const onEvent = (e: { kind: string; root: string; count: number }) => {
      if (e.kind !== "committed") return;
      // Read each closure the moment its writer says it is committed.
      reads.push(
        countRecursive(reader, e.root).then((got) => void seen.push({ root: e.root, expected: e.count, got })),
      );
    };
    const a = startUploadLoop(path, "writer-a", 15, 400, onEvent);
    const b = startUploadLoop(path, "writer-b", 15, 400, onEvent);
    children.push(a, b);
    // Meanwhile this process writes too.
    const putter = reader.putMultipleStart();
    for (const d of [fixtures.DIRECTORY_A, fixtures.DIRECTORY_B, fixtures.DIRECTORY_D]) await putter.put(d);
    await putter.close();

    expect(await a.exited, a.stderr()).toBe(0);
    expect(await b.exited, b.stderr()).toBe(0);
    await Promise.all(reads);
    expect(seen).toHaveLength(30);
    for (const s of seen) expect(s.got, `closure of ${s.root}`).toBe(s.expected);

    const whole = await checkWholeStore(reader);
    for (const e of [...a.events, ...b.events]) expect(whole.digests.has(e.root)).toBe(true);
    expect(whole.digests.has(directoryDigest(fixtures.DIRECTORY_D).hex)).toBe(true);
    // Another process, opened afterwards, sees the same complete store.
    const fromChild = checkStoreInChild(path);
    expect(fromChild.directories).toBe(whole.directories);
    expect(fromChild.roots).toEqual([...whole.unreferenced].sort());
    await reader.close();
  });
});

describe("crash safety", () => {
  it("a writer killed with SIGKILL mid-upload leaves every stored closure complete, again and again", async () => {
    const path = join(dir, "crash");
    const committed = new Set<string>();
    // Every root an upload was started for, and the one this test uploads itself.
    const announced = new Set<string>([directoryDigest(fixtures.DIRECTORY_C).hex]);
    let landedInFlight = 0;
    for (let cycle = 0; cycle < 5; cycle++) {
      // Kill after a random number of commits, a random few milliseconds after the writer starts a commit.
      const killAfter = 1 + Math.floor(Math.random() * 3);
      const delayMs = Math.floor(Math.random() * 30);
      let closings = 0;
      let inFlight: { root: string; count: number } | undefined;
      const child = startUploadLoop(path, `crash-${cycle}-${Math.random()}`, 0, 3000, (e, c) => {
        if (e.kind === "committed") {
          committed.add(e.root);
          inFlight = undefined;
        } else {
          inFlight = e;
          announced.add(e.root);
          if (++closings === killAfter + 1) setTimeout(() => c.process.kill("SIGKILL"), delayMs);
        }
      });
      children.push(child);
      expect(await child.exited, child.stderr()).toBe("SIGKILL");

      const service = await LmdbDirectoryService.open(path);
      try {
        const whole = await checkWholeStore(service);
        for (const root of committed) expect(whole.digests.has(root), `committed root ${root}`).toBe(true);
        // The upload cut short is either wholly there or not at all.
        if (inFlight && whole.digests.has(inFlight.root)) {
          landedInFlight++;
          expect(await countRecursive(service, inFlight.root)).toBe(inFlight.count);
        }
        // Nothing of an upload is stored without its root: a part of one would
        // leave a directory that no other refers to and that is no upload's root.
        for (const hex of whole.unreferenced) expect(announced.has(hex), `orphan directory ${hex}`).toBe(true);
        // The dead writer's lock is recovered: this process can write.
        const putter = service.putMultipleStart();
        await putter.put(fixtures.DIRECTORY_A);
        await putter.put(fixtures.DIRECTORY_C);
        await putter.close();
      } finally {
        await service.close();
      }
    }
    expect(committed.size).toBeGreaterThanOrEqual(5);
    console.log(`crash test: ${committed.size} uploads committed, ${landedInFlight} of 5 killed uploads landed anyway`);
  }, 120_000);
});
