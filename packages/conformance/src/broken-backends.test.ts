/**
 * The suite can fail: each deliberately broken backend fails exactly the
 * scenarios its bug touches, with a message naming the backend and the
 * scenario, and passes the rest.
 */
import { describe, expect, it } from "vitest";
import { type BrokenBackend, brokenBackends } from "./broken-backends.js";
import { runConformance, scenarios } from "./index.js";

/** Scenarios each backend must fail, by a pattern matching exactly one scenario name each. */
const expectedFailures: Record<keyof typeof brokenBackends, RegExp[]> = {
  childrenBeforeParents: [
    // Every scenario that reads back more than one directory through getRecursive.
    /^§7\.5 /,
    /^§7\.7 /,
    /^§7\.8 /,
    /^§7\.15 /,
    /^§7\.16 large: a 10 000/,
    /^a 6 000-directory upload/,
    /^§7\.16 large: a directory with 50 000/,
    /^§7\.16 a slow consumer/, // it buffers the stream to reverse it
    /^§7\.17 /,
    /^§7\.18 abort: an aborted getRecursive/,
    /^put is idempotent/,
    /^re-sending directories/,
    /^get of a directory that was not an upload's root/,
    /^an upload in progress/,
    /^§2 limits are accepted/,
    /^a 10 000-deep chain/,
    /^getRecursive early stop/,
    /^get and getRecursive with an already-aborted/,
    /^put\(\) while close\(\) runs/,
    /^two close\(\) calls at once/,
    /^isolation\.mutate-returned/,
    /^isolation\.mutate-after-put/,
    /^order\.breadth-first/,
    /^corruption\.repair/, // reads the repaired trees back through getRecursive
  ],
  bufferingRecursive: [/^§7\.16 a slow consumer/],
  repeatingRecursive: [
    // Every scenario whose tree reaches one directory by two paths.
    /^§7\.7 /,
    /^§7\.8 /,
    /^§7\.16 large: a directory with 50 000/,
    /^put is idempotent/,
    /^re-sending directories/,
    /^an upload in progress/,
    /^two close\(\) calls at once/, // D reaches A directly and through B
    /^order\.breadth-first/, // depth first
    /^corruption\.repair/, // C refers to A twice
  ],
  danglingUploads: [
    /^§7\.3 /,
    /^§7\.4 /,
    /^§7\.6 /,
    /^§7\.9 /,
    /^§7\.10 /,
    /^a DirectoryNode declaring less/,
    /^listDigests lists exactly/,
    /^a 6 000-directory upload/, // stores the unconnected upload
  ],
  // It also hands out views of the bytes it keeps.
  trustsStoredBytes: [/^§7\.14 /, /^stored bytes that hash right/, /^isolation\.mutate-returned/, /^corruption\.repair/],
  truncatedKeys: [
    // Collisions need many directories.
    /^§7\.16 large: a 10 000/,
    /^a 6 000-directory upload/,
    /^§7\.16 a slow consumer/,
    /^§7\.18 abort: an aborted getRecursive/,
    /^a 10 000-deep chain/,
    /^getRecursive early stop/,
    /^listDigests lists exactly/, // its keys are not digests
  ],
  stringNames: [/^§7\.17 /, /^§2 limits are accepted/],
  ignoresAbort: [
    /^§7\.18 abort: an aborted getRecursive/,
    /^an upload cancelled through its AbortSignal/,
    /^get and getRecursive with an already-aborted/,
  ],
  lateEncoding: [/^isolation\.mutate-after-put/],
  storesBeforeClose: [
    /^§7\.18 abort: an aborted upload/,
    /^an upload cancelled through its AbortSignal/,
    /^a 6 000-directory upload/,
    /^§7\.12 rule 5: a file or directory size of/, // A, put before the invalid directory, stays behind
  ],
  noClosingState: [/^put\(\) while close\(\) runs/, /^two close\(\) calls at once/, /^abort\(\) while close\(\) runs/],
};

function matchOne(pattern: RegExp): string {
  const matches = scenarios.filter((s) => pattern.test(s.name));
  if (matches.length !== 1) throw new Error(`${pattern} matches ${matches.length} scenarios, expected 1`);
  return matches[0].name;
}

describe("broken backends fail exactly the scenarios their bug touches", () => {
  for (const [key, backend] of Object.entries(brokenBackends) as [keyof typeof brokenBackends, BrokenBackend][]) {
    it(`${backend.name}: ${backend.bug}`, async () => {
      const expected = expectedFailures[key].map(matchOne).sort();
      const report = await runConformance(backend);
      const failed = report.results.filter((r) => r.status === "fail");
      expect(failed.map((r) => r.scenario).sort()).toEqual(expected);
      for (const r of failed) expect(r.message).toMatch(new RegExp(`^${backend.name}: ${r.scenario.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: .+`));
      expect(report.skipped).toBe(0);
      expect(report.passed).toBe(scenarios.length - expected.length);
    }, 120_000);
  }
});
