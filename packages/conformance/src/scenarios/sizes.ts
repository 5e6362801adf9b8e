/**
 * Declared sizes (spec §1.1): canonical n + s is always accepted; a legacy
 * size up to 2·n + s (older tvix/snix) is rejected by a store checking
 * exactly and accepted by one in snix-compat mode; anything above 2·n + s is
 * rejected by every store. The store's mode is the target's `sizeCheck`;
 * undeclared, either verdict on a legacy size passes and is noted.
 */
import { directoryDigest, fixtures } from "@castore-ts/core";
import {
  describeError,
  expectAbsent,
  expectGet,
  expectRecursive,
  expectUpload,
  expectUploadFails,
  checkErrorClass,
  upload,
} from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";
import { WITH_KEEP, dWITH_KEEP } from "./common.js";

const { DIRECTORY_COMPLICATED_LEGACY, DIRECTORY_NESTED_LEGACY, DIRECTORY_COMPLICATED_OVERSIZED } = fixtures;
const LEGACY_TREE = [WITH_KEEP, DIRECTORY_COMPLICATED_LEGACY, DIRECTORY_NESTED_LEGACY];
const dCOMPLICATED_LEGACY = directoryDigest(DIRECTORY_COMPLICATED_LEGACY);
const dNESTED_LEGACY = directoryDigest(DIRECTORY_NESTED_LEGACY);
const WHAT = "upload [WITH_KEEP, COMPLICATED_LEGACY, NESTED_LEGACY] (legacy sizes 2·n + s)";

/** The legacy tree was stored: it reads back byte for byte, sizes as declared. */
async function expectLegacyTreeStored(ctx: ScenarioContext): Promise<void> {
  await expectGet(ctx, dNESTED_LEGACY, DIRECTORY_NESTED_LEGACY);
  await expectRecursive(ctx, dNESTED_LEGACY, [dNESTED_LEGACY, dCOMPLICATED_LEGACY, dWITH_KEEP], "snix-compat");
}

export const sizeScenarios: Scenario[] = [
  {
    id: "closure.legacy-sizes",
    name: "a tree with snix's legacy sizes (2·n + s) → rejected by a store checking exactly, stored as sent by a snix-compat one",
    requires: ["write"],
    async run(ctx) {
      const mode = ctx.target.sizeCheck;
      if (mode === "exact") {
        await expectUploadFails(ctx, WHAT, LEGACY_TREE, ["CLOSURE"]);
        await expectAbsent(ctx, [dNESTED_LEGACY, dCOMPLICATED_LEGACY], "the store checks sizes exactly");
        return;
      }
      if (mode === "snix-compat") {
        await expectUpload(ctx, WHAT, LEGACY_TREE, dNESTED_LEGACY);
        await expectLegacyTreeStored(ctx);
        return;
      }
      // Undeclared: either answer is a conforming store; say which it was.
      const r = await upload(ctx.service, LEGACY_TREE);
      if (r.ok) {
        if (r.root.hex !== dNESTED_LEGACY.hex) ctx.fail(`${WHAT}: close() returned ${r.root.hex}`);
        await expectLegacyTreeStored(ctx);
        ctx.note("legacy sizes accepted: the store behaves as sizeCheck snix-compat");
      } else {
        checkErrorClass(ctx, `${WHAT} (at ${r.at})`, r.error, ["CLOSURE"]);
        ctx.note(`legacy sizes rejected (${describeError(r.error)}): the store behaves as sizeCheck exact`);
      }
    },
  },
  {
    id: "closure.size-too-large",
    name: "a DirectoryNode declaring more than 2·n + s of its child → upload fails, whatever the store's size check",
    requires: ["write"],
    async run(ctx) {
      await expectUploadFails(
        ctx,
        "upload [WITH_KEEP, COMPLICATED_OVERSIZED] (keep declares 3, at most 2·1 + 0 is accepted)",
        [WITH_KEEP, DIRECTORY_COMPLICATED_OVERSIZED],
        ["CLOSURE"],
      );
      await expectAbsent(ctx, [directoryDigest(DIRECTORY_COMPLICATED_OVERSIZED)], "its upload failed");
    },
  },
];
