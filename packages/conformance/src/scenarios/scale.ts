/** Spec §7.15 (concurrent overlapping uploads) and §7.16 (large trees, streaming memory). */
import { setTimeout as sleep, setImmediate as yieldToEventLoop } from "node:timers/promises";
import {
  type Digest,
  type Directory,
  directoryDigest,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
} from "@castore-ts/core";
import {
  describeError,
  expectAbsent,
  expectGet,
  expectOk,
  expectRecursive,
  expectUpload,
  label,
  upload,
} from "../checks.js";
import { formatBytes, gcFunction, retainedBytes } from "../heap.js";
import { type GenerateTreeOptions, deepChain, generateTree, taggedDirectory, wideDirectory } from "../trees.js";
import type { Scenario, ScenarioContext } from "../types.js";
import { dA } from "./common.js";

const CONCURRENT_UPLOADS = 32;

/**
 * 32 uploads of 16 distinct roots (each root twice), all holding one shared
 * subtree, pairs of roots sharing a second one; half send the shared part first.
 */
function overlappingUploads(): { directories: Directory[]; root: Digest; closure: Digest[] }[] {
  const shared = generateTree({ directories: 40, seed: 1501 });
  const own = Array.from({ length: 8 }, (_, k) => generateTree({ directories: 12, seed: 1600 + k }));
  return Array.from({ length: CONCURRENT_UPLOADS }, (_, i) => {
    const mine = own[i % 8];
    const root = makeDirectory({
      directories: [
        makeDirectoryNode("own", mine.root, mine.rootSize),
        makeDirectoryNode("shared", shared.root, shared.rootSize),
      ],
      files: [makeFileNode(`root-${i % 16}`, dA, i % 16)],
    });
    const parts =
      i % 2 === 0 ? [...shared.directories, ...mine.directories] : [...mine.directories, ...shared.directories];
    const rootDigest = directoryDigest(root);
    return {
      directories: [...parts, root],
      root: rootDigest,
      closure: [rootDigest, ...shared.digests, ...mine.digests],
    };
  });
}

/**
 * Generates and uploads a tree, and keeps only its root and size. The tree is
 * made in here, not passed in: an argument computed in the caller's frame can
 * stay reachable from that suspended frame while memory is measured.
 */
async function uploadAndForget(
  ctx: ScenarioContext,
  opts: GenerateTreeOptions,
): Promise<{ root: Digest; directories: number }> {
  const tree = generateTree(opts);
  await expectUpload(ctx, `upload of a ${tree.directories.length}-directory tree`, tree.directories, tree.root);
  return { root: tree.root, directories: tree.directories.length };
}

export const scaleScenarios: Scenario[] = [
  {
    id: "scale.concurrent-uploads",
    name: `§7.15 concurrency: ${CONCURRENT_UPLOADS} uploads at once of overlapping trees all succeed`,
    requires: ["write"],
    timeoutMs: 120_000,
    async run(ctx) {
      const uploads = overlappingUploads();
      const outcomes = await Promise.all(uploads.map((u) => upload(ctx.service, u.directories)));
      const problems: string[] = [];
      outcomes.forEach((r, i) => {
        if (!r.ok) problems.push(`upload #${i + 1} failed at ${r.at}: ${describeError(r.error)}`);
        else if (r.root.hex !== uploads[i].root.hex)
          problems.push(`upload #${i + 1} returned ${label(r.root)}, expected ${label(uploads[i].root)}`);
      });
      if (problems.length > 0)
        ctx.fail(
          `${problems.length} of ${CONCURRENT_UPLOADS} concurrent uploads went wrong: ${problems.slice(0, 3).join("; ")}`,
        );
      for (const u of uploads.slice(0, 16)) await expectRecursive(ctx, u.root, u.closure);
    },
  },
  {
    id: "scale.large-tree",
    name: "§7.16 large: a 10 000-directory tree (mixed fan-out and depth) round-trips",
    requires: ["write", "largeTrees"],
    timeoutMs: 300_000,
    async run(ctx) {
      const tree = generateTree({ directories: 10_000, seed: 1616 });
      await expectUpload(ctx, "upload of the 10 000-directory tree", tree.directories, tree.root);
      await expectGet(ctx, tree.root, tree.directories[tree.directories.length - 1]);
      await expectRecursive(ctx, tree.root, tree.digests);
    },
  },
  {
    // 6 000 directories (about 1 MB) are several of core's write batches and past the postgres
    // store's streaming threshold: a store that takes rows while the upload is open must keep
    // them invisible, and drop them when the upload is aborted or fails at close.
    id: "scale.large-upload-invisible",
    name: "a 6 000-directory upload shows nothing while open; aborted, or failing at close, it stores nothing",
    requires: ["write", "largeTrees"],
    timeoutMs: 300_000,
    async run(ctx) {
      const tree = generateTree({ directories: 6000, seed: 1860 });
      // Spread over the upload: leaves sent first, the middle, the last before the root, the root.
      const sample = tree.digests.filter((_, i) => i % 250 === 0 || i >= tree.digests.length - 2);
      const open = ctx.service.putMultipleStart();
      for (const d of tree.directories.slice(0, -1))
        await expectOk(ctx, "put() of the 6 000-directory tree", () => open.put(d));
      await expectAbsent(ctx, sample, "their upload is still open");
      await expectOk(ctx, "abort() of the 6 000-directory upload", () => open.abort());
      await expectAbsent(ctx, sample, "their upload was aborted");

      // The tree, then a directory nothing refers to: two roots, so close() must fail.
      const stray = taggedDirectory("conformance-stray");
      const failing = await upload(ctx.service, [...tree.directories, stray.directory]);
      if (failing.ok)
        ctx.fail(
          `an upload of the tree plus an unconnected directory closed with ${label(failing.root)}; expected a failure`,
        );
      await expectAbsent(ctx, [...sample, stray.digest], "their upload was not connected");

      await expectUpload(ctx, "upload of the 6 000-directory tree", tree.directories, tree.root);
      await expectRecursive(ctx, tree.root, tree.digests);
    },
  },
  {
    id: "scale.wide-directory",
    name: "§7.16 large: a directory with 50 000 entries (about 2.5 MB encoded) round-trips",
    requires: ["write", "largeTrees"],
    timeoutMs: 300_000,
    async run(ctx) {
      const tree = wideDirectory(50_000);
      await expectUpload(ctx, "upload [A, W] (W with 50 000 entries)", tree.directories, tree.root);
      await expectGet(ctx, tree.root, tree.directories[1]);
      await expectRecursive(ctx, tree.root, tree.digests);
    },
  },
  {
    // Deep enough that walking the tree by recursion overflows the call stack
    // (cache:// filling near did, at 10 000 but not at 1 000).
    id: "scale.deep-chain",
    name: "a 10 000-deep chain of directories round-trips",
    requires: ["write", "largeTrees"],
    timeoutMs: 300_000,
    async run(ctx) {
      const chain = deepChain(10_000);
      await expectUpload(ctx, "upload of a 10 000-deep chain", chain.directories, chain.root);
      await expectRecursive(ctx, chain.root, chain.digests);
      await expectGet(ctx, chain.root, chain.directories[chain.directories.length - 1]);
    },
  },
  {
    id: "scale.slow-consumer",
    name: "§7.16 a slow consumer of getRecursive does not make memory grow with the tree",
    requires: ["write", "largeTrees", "streaming"],
    timeoutMs: 300_000,
    async run(ctx) {
      const gc = gcFunction();
      if (!gc)
        return ctx.skip(
          "cannot force garbage collection in this process to measure memory (run node with --expose-gc)",
        );
      // Fat directories (1..48 files each): decoded, the tree is tens of MiB.
      const { root, directories } = await uploadAndForget(ctx, { directories: 5000, seed: 1617, maxFiles: 48 });

      // Let whatever the upload left pending settle before the baseline.
      await sleep(50);
      const base = retainedBytes(gc);
      const checkpoints = new Set([
        1,
        10,
        ...Array.from({ length: 5 }, (_, k) => Math.floor(((k + 1) * directories) / 5) - 1),
      ]);
      const samples: number[] = [];
      let consumed = 0;
      try {
        for await (const _ of ctx.service.getRecursive(root, { signal: ctx.signal })) {
          consumed++;
          if (checkpoints.has(consumed)) samples.push(retainedBytes(gc, 1)); // one pass: the median and the floor absorb the rest
          // Slow: give a producer every chance to run ahead of this consumer.
          await (consumed % 250 === 0 ? sleep(20) : yieldToEventLoop());
        }
      } catch (e) {
        ctx.fail(`getRecursive(${label(root)}) threw after ${consumed} directories: ${describeError(e)}`);
      }
      if (consumed !== directories)
        ctx.fail(`getRecursive(${label(root)}) yielded ${consumed} directories, expected ${directories}`);

      // What holding the whole tree costs, for scale. `all` is read after the
      // measurement: a variable the code no longer reads may be collected early.
      const all: Directory[] = [];
      for await (const d of ctx.service.getRecursive(root)) all.push(d);
      const holdingAll = retainedBytes(gc);
      if (all.length !== directories)
        ctx.fail(`getRecursive(${label(root)}) yielded ${all.length} directories, expected ${directories}`);
      all.length = 0;
      // The baseline is the lower of before and after: garbage of earlier work
      // occasionally survives into the first reading and would hide growth.
      const floor = Math.min(base, retainedBytes(gc));

      samples.sort((a, b) => a - b);
      const typical = samples[Math.floor(samples.length / 2)] - floor;
      const peak = samples[samples.length - 1] - floor;
      const whole = holdingAll - floor;
      const summary =
        `${formatBytes(typical)} held typically (peak ${formatBytes(peak)}) while slowly consuming ` +
        `${directories} directories; holding them all takes ${formatBytes(whole)}`;
      // Decoded, these 5 000 directories take some 35 MiB; far less means the measurement itself failed.
      if (whole < 8 * 2 ** 20) return ctx.skip(`could not measure memory reliably: ${summary}`);
      // The median of the readings: a buffering stream holds the tree at every one of them.
      if (typical > whole / 4) ctx.fail(`memory grows with the tree: ${summary} (limit: a quarter of that)`);
      ctx.note(summary);
    },
  },
];
