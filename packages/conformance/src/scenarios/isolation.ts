/**
 * Spec §3 (every read returns the stored directory, exactly): what a caller
 * gets from a read, and what it handed to a put, is the caller's own. Changing
 * it afterwards must not change what is stored, nor what later reads return.
 * A store that hands out views into its own bytes, or keeps the caller's
 * objects until it encodes them, fails here.
 */
import type { Directory } from "@castore-ts/core";
import { collectRecursive, describeError, expectGet, expectOk, expectRecursive, label } from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";
import { COMPLICATED, WITH_KEEP, dCOMPLICATED, dWITH_KEEP } from "./common.js";

/** A copy sharing no bytes, node or array with `d` (the fixtures are shared by every scenario). */
function deepCopy(d: Directory): Directory {
  return {
    ...d,
    directories: d.directories.map((n) => ({ ...n, name: n.name.slice(), digest: n.digest.slice() })),
    files: d.files.map((n) => ({ ...n, name: n.name.slice(), digest: n.digest.slice() })),
    symlinks: d.symlinks.map((n) => ({ ...n, name: n.name.slice(), target: n.target.slice() })),
  };
}

/** Changes every byte of every name, digest and target of `d`, then its sizes, flags and lists. */
function scribble(d: Directory): void {
  const flip = (b: Uint8Array) => {
    for (let i = 0; i < b.length; i++) b[i] ^= 0xff;
  };
  for (const n of d.directories) {
    flip(n.name);
    flip(n.digest);
    n.size += 1n;
  }
  for (const n of d.files) {
    flip(n.name);
    flip(n.digest);
    n.size += 1n;
    n.executable = !n.executable;
  }
  for (const n of d.symlinks) {
    flip(n.name);
    flip(n.target);
  }
  d.directories.push(...d.directories);
  d.files.reverse();
  d.symlinks.length = 0;
}

/** Expects get and getRecursive of COMPLICATED to return exactly what was stored; failures say what happened `after`. */
async function expectStoredIntact(outer: ScenarioContext, after: string): Promise<void> {
  const ctx: ScenarioContext = { ...outer, fail: (message) => outer.fail(`after ${after}: ${message}`) };
  await expectGet(ctx, dCOMPLICATED, COMPLICATED);
  await expectGet(ctx, dWITH_KEEP, WITH_KEEP);
  await expectRecursive(ctx, dCOMPLICATED, [dCOMPLICATED, dWITH_KEEP]);
}

export const isolationScenarios: Scenario[] = [
  {
    id: "isolation.mutate-returned",
    name: "changing what get and getRecursive returned (names, digests, targets, sizes) changes nothing stored",
    requires: ["write"],
    async run(ctx) {
      const putter = ctx.service.putMultipleStart();
      await expectOk(ctx, "put(WITH_KEEP)", () => putter.put(deepCopy(WITH_KEEP)));
      await expectOk(ctx, "put(COMPLICATED)", () => putter.put(deepCopy(COMPLICATED)));
      await expectOk(ctx, "close() of upload [WITH_KEEP, COMPLICATED]", () => putter.close());

      for (let round = 1; round <= 2; round++) {
        const got = await expectGet(ctx, dCOMPLICATED, COMPLICATED);
        scribble(got);
        await expectStoredIntact(
          ctx,
          `changing every byte of what get(${label(dCOMPLICATED)}) returned (round ${round})`,
        );

        const all = await collectRecursive(ctx.service, dCOMPLICATED);
        if (all.error !== undefined) ctx.fail(`getRecursive(${label(dCOMPLICATED)}) threw ${describeError(all.error)}`);
        for (const d of all.directories) scribble(d);
        await expectStoredIntact(
          ctx,
          `changing every byte of what getRecursive(${label(dCOMPLICATED)}) yielded (round ${round})`,
        );
      }
    },
  },
  {
    id: "isolation.mutate-after-put",
    name: "changing a directory after put(), before close(), changes nothing stored",
    requires: ["write"],
    async run(ctx) {
      // An upload left open while the caller reuses its objects: each directory is changed right after its put.
      const keep = deepCopy(WITH_KEEP);
      const complicated = deepCopy(COMPLICATED);
      const putter = ctx.service.putMultipleStart();
      await expectOk(ctx, "put(WITH_KEEP)", () => putter.put(keep));
      scribble(keep);
      await expectOk(ctx, "put(COMPLICATED)", () => putter.put(complicated));
      scribble(complicated);
      const root = await expectOk(ctx, "close() of upload [WITH_KEEP, COMPLICATED]", () => putter.close());
      if (root.hex !== dCOMPLICATED.hex) {
        ctx.fail(
          `close() returned ${label(root)}, expected ${label(dCOMPLICATED)}: the upload used the directories as changed after put()`,
        );
      }
      await expectStoredIntact(ctx, "changing every directory of an upload after its put(), before close()");

      // A single put: the directory is the caller's again once put() resolved.
      const single = deepCopy(WITH_KEEP);
      const digest = await expectOk(ctx, "put(WITH_KEEP)", () => ctx.service.put(single));
      if (digest.hex !== dWITH_KEEP.hex)
        ctx.fail(`put(WITH_KEEP) returned ${label(digest)}, expected ${label(dWITH_KEEP)}`);
      scribble(single);
      await expectStoredIntact(ctx, "changing a directory after put() resolved");
    },
  },
];
