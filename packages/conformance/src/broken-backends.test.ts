/**
 * The suite can fail: each deliberately broken backend fails exactly the
 * scenarios its bug touches, with a message naming the backend and the
 * scenario, and passes the rest.
 */
import { describe, expect, it } from "vitest";
import { type BrokenBackend, brokenBackends } from "./broken-backends.js";
import { runConformance, scenarios } from "./index.js";

/** Scenarios each backend must fail, by id. */
const expectedFailures: Record<keyof typeof brokenBackends, string[]> = {
  childrenBeforeParents: [
    // Every scenario that reads back more than one directory through getRecursive.
    "uploads.leaves-to-root",
    "uploads.duplicate",
    "order.root-to-leaves",
    "scale.concurrent-uploads",
    "scale.large-tree",
    "scale.large-upload-invisible",
    "scale.wide-directory",
    "scale.slow-consumer", // it buffers the stream to reverse it
    "names.non-utf8",
    "abort.get-recursive",
    "uploads.idempotent",
    "uploads.resend",
    "uploads.get-non-root",
    "uploads.in-progress-invisible",
    "validation.limits-accepted",
    "scale.deep-chain",
    "abort.early-stop",
    "abort.already-aborted",
    "closing.put-during-close",
    "closing.close-twice-concurrent",
    "isolation.mutate-returned",
    "isolation.mutate-after-put",
    "order.breadth-first",
    "corruption.repair", // reads the repaired trees back through getRecursive
  ],
  bufferingRecursive: ["scale.slow-consumer"],
  repeatingRecursive: [
    // Every scenario whose tree reaches one directory by two paths.
    "uploads.duplicate",
    "order.root-to-leaves",
    "scale.wide-directory",
    "uploads.idempotent",
    "uploads.resend",
    "uploads.in-progress-invisible",
    "closing.close-twice-concurrent", // D reaches A directly and through B
    "order.breadth-first", // depth first
    "corruption.repair", // C refers to A twice
  ],
  danglingUploads: [
    "closure.put-child-alone",
    "closure.dangling-child",
    "closure.parent-before-child",
    "closure.disconnected",
    "closure.wrong-size",
    "closure.size-too-small",
    "closure.size-too-large",
    "closure.legacy-sizes", // stores legacy sizes its own (exact) reads then refuse
    "uploads.list-digests",
    "scale.large-upload-invisible", // stores the unconnected upload
  ],
  // It also hands out views of the bytes it keeps.
  trustsStoredBytes: [
    "corruption.wrong-digest",
    "corruption.non-canonical",
    "isolation.mutate-returned",
    "corruption.repair",
    "validation.wrong-types", // its own get() asks the store with whatever came, a hex string included
  ],
  truncatedKeys: [
    // Collisions need many directories.
    "scale.large-tree",
    "scale.large-upload-invisible",
    "scale.slow-consumer",
    "abort.get-recursive",
    "scale.deep-chain",
    "abort.early-stop",
    "uploads.list-digests", // its keys are not digests
  ],
  stringNames: ["names.non-utf8", "validation.limits-accepted"],
  ignoresAbort: ["abort.get-recursive", "abort.upload-signal", "abort.already-aborted"],
  // Its putter, a plain one, has no closing state either: abort() during close() resolves.
  lateEncoding: ["isolation.mutate-after-put", "closing.abort-during-close"],
  storesBeforeClose: [
    "abort.upload",
    "abort.upload-signal",
    "scale.large-upload-invisible",
    "validation.size-not-uint64", // A, put before the invalid directory, stays behind
    "validation.wrong-types", // it encodes the caller's object itself, so the validator checks those bytes, not the object
  ],
  noClosingState: ["closing.put-during-close", "closing.close-twice-concurrent", "closing.abort-during-close"],
  // Every scenario that reads a multi-piece blob back whole and compares (a chunk read alone is one piece).
  blobOtherBytes: [
    "blob.round-trip",
    "blob.piece-sizes",
    "blob.reused-buffer",
    "blob.concurrent-writes",
    "blob.ranged-read",
  ],
  // The same, and a damaged blob whose read ends cleanly before reaching the damage.
  blobTruncates: [
    "blob.round-trip",
    "blob.piece-sizes",
    "blob.reused-buffer",
    "blob.concurrent-writes",
    "blob.ranged-read",
    "blob.corruption",
  ],
  // Only writes in more than one piece get the wrong digest.
  blobWrongDigest: ["blob.piece-sizes", "blob.reused-buffer", "blob.concurrent-writes"],
  // Every scenario that reads the last blob it wrote before writing another.
  blobWriteBehind: [
    "blob.round-trip",
    "blob.absent",
    "blob.reused-buffer",
    "blob.concurrent-writes",
    "blob.ranged-read",
    "blob.chunk-by-digest",
    "blob.corruption",
    // A blob of one chunk is that chunk: acknowledged, it is not there yet for the ref's closure check.
    "refs.set-get",
    "refs.compare-and-swap-race",
    "refs.list",
    "refs.names",
  ],
};

function known(id: string): string {
  if (!scenarios.some((s) => s.id === id)) throw new Error(`no scenario has the id ${id}`);
  return id;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe("broken backends fail exactly the scenarios their bug touches", () => {
  for (const [key, backend] of Object.entries(brokenBackends) as [keyof typeof brokenBackends, BrokenBackend][]) {
    it(`${backend.name}: ${backend.bug}`, async () => {
      const expected = expectedFailures[key].map(known).sort();
      const report = await runConformance(backend);
      const failed = report.results.filter((r) => r.status === "fail");
      expect(failed.map((r) => r.id).sort()).toEqual(expected);
      for (const r of failed)
        expect(r.message).toMatch(new RegExp(`^${escape(`${backend.name}: [${r.id}] ${r.title}: `)}.+`));
      // blob.large is left to the real backends' suites (LARGE_BLOBS_ELSEWHERE)
      const elsewhere = scenarios
        .filter((s) => s.requires.includes("gc") || s.requires.includes("partialUpload"))
        .map((s) => s.id);
      expect(report.results.filter((r) => r.status === "skip").map((r) => r.id)).toEqual(["blob.large", ...elsewhere]);
      expect(report.passed).toBe(scenarios.length - expected.length - 1 - elsewhere.length);
    }, 120_000);
  }
});
