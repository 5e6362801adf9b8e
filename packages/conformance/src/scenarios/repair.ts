/**
 * Repair: an upload never rewrites a stored digest, so damaged stored bytes
 * are replaced only through `service.repair(directories)` (what `castore
 * verify --repair` calls). It must replace exactly what is stored, leave
 * absent digests absent, and write nothing that fails validation.
 */
import { encodeDirectory, type Digest, type Directory } from "@castore-ts/core";
import { expectGet, expectOk, expectRecursive, expectRejects, expectUpload, label, labelList } from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";
import { A, B, C, WITH_KEEP, dA, dB, dC, dWITH_KEEP } from "./common.js";
import { corruptHook, expectGetCorrupt } from "./corruption.js";

type Repair = (directories: Directory[]) => Promise<Digest[]>;

function repairOf(ctx: ScenarioContext): Repair {
  const repair = ctx.service.repair?.bind(ctx.service);
  if (!repair) {
    ctx.fail(
      "the service has no repair(directories): implement it, or declare " +
        "capabilities.repair as a string saying why the backend cannot replace stored bytes",
    );
  }
  return repair;
}

function sameDigests(got: Digest[], expected: Digest[]): boolean {
  const a = new Set(got.map((d) => d.hex));
  return got.length === expected.length && expected.every((d) => a.has(d.hex));
}

export const repairScenarios: Scenario[] = [
  {
    id: "corruption.repair",
    name: "repair replaces damaged stored bytes; an absent digest stays absent; an invalid directory is rejected",
    requires: ["write", "corruption", "isolated", "repair"],
    async run(ctx) {
      const corrupt = corruptHook(ctx);
      const repair = repairOf(ctx);
      await expectUpload(ctx, "upload [A, B]", [A, B], dB);
      await expectUpload(ctx, "upload [A, C]", [A, C], dC);
      await expectOk(ctx, "corrupt(B, bytes of WITH_KEEP)", () => corrupt(dB, encodeDirectory(WITH_KEEP)));
      await expectOk(ctx, "corrupt(A, ff ff ff)", () => corrupt(dA, Uint8Array.from([0xff, 0xff, 0xff])));
      await expectGetCorrupt(ctx, dB, "B's bytes replaced by WITH_KEEP's");

      const replaced = await expectOk(ctx, "repair([B, A])", () => repair([B, A]));
      if (!sameDigests(replaced, [dB, dA])) {
        ctx.fail(`repair([B, A]) reported ${labelList(replaced)} replaced; expected ${labelList([dB, dA])}`);
      }
      await expectGet(ctx, dB, B);
      await expectGet(ctx, dA, A);
      await expectRecursive(ctx, dB, [dB, dA]);
      await expectRecursive(ctx, dC, [dC, dA]);

      // A repair never adds: WITH_KEEP was never stored (only its bytes, under B's key).
      const added = await expectOk(ctx, "repair([WITH_KEEP])", () => repair([WITH_KEEP]));
      if (added.length > 0)
        ctx.fail(`repair([WITH_KEEP]) of a directory not stored reported ${labelList(added)} replaced`);
      const got = await expectOk(ctx, `get(${label(dWITH_KEEP)})`, () => ctx.service.get(dWITH_KEEP));
      if (got !== undefined) ctx.fail(`repair([WITH_KEEP]) stored ${label(dWITH_KEEP)}, which was not stored before`);

      // A directory that fails validation is rejected whole: nothing of the call is written.
      await expectOk(ctx, "corrupt(B, ff ff ff)", () => corrupt(dB, Uint8Array.from([0xff, 0xff, 0xff])));
      const unsorted: Directory = { ...C, directories: [...C.directories].reverse() };
      await expectRejects(ctx, "repair([B, C with its entries unsorted])", () => repair([B, unsorted]), ["VALIDATION"]);
      await expectGetCorrupt(ctx, dB, "repair rejected for a later invalid directory");
    },
  },
];
