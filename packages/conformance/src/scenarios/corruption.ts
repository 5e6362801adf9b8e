/** Spec §7.14: corrupt stored data is never returned; get and getRecursive raise CorruptionError. */
import { Digest, encodeDirectory } from "@castore-ts/core";
import {
  checkErrorClass,
  collectRecursive,
  expectOk,
  expectRejects,
  expectUpload,
  label,
  labelList,
} from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";
import { A, B, C, WITH_KEEP, dA, dB, dC, dD } from "./common.js";

type Corrupt = (digest: Digest, bytes: Uint8Array) => Promise<void>;

/** The instance's corrupt hook, or a failure saying how to provide or decline it (repair.ts uses it too). */
export function corruptHook(ctx: ScenarioContext): Corrupt {
  const corrupt = ctx.instance.corrupt?.bind(ctx.instance);
  if (!corrupt) {
    ctx.fail(
      "the instance has no corrupt(digest, bytes) hook: provide one, or declare " +
        "capabilities.corruption as a string saying why the backend cannot inject corruption",
    );
  }
  return corrupt;
}

/** get(digest) must reject (CorruptionError when typed): corrupt data is never returned. */
export async function expectGetCorrupt(ctx: ScenarioContext, digest: Digest, why: string): Promise<void> {
  await expectRejects(ctx, `get(${label(digest)}) (${why})`, () => ctx.service.get(digest), ["CORRUPTION"]);
}

/**
 * getRecursive(root) must end in an error (CorruptionError when typed), having
 * yielded only directories that are intact: each a member of `intact`.
 */
async function expectRecursiveCorrupt(ctx: ScenarioContext, root: Digest, intact: Digest[], why: string) {
  const what = `getRecursive(${label(root)}) (${why})`;
  const r = await collectRecursive(ctx.service, root);
  const allowed = new Set(intact.map((d) => d.hex));
  const bad = r.digests.filter((d) => !allowed.has(d.hex));
  if (bad.length > 0) ctx.fail(`${what} yielded corrupt data: directories hashing to ${labelList(bad)}`);
  if (r.error === undefined) ctx.fail(`${what} ended normally after ${labelList(r.digests)}; expected an error`);
  checkErrorClass(ctx, what, r.error, ["CORRUPTION"]);
}

export const corruptionScenarios: Scenario[] = [
  {
    id: "corruption.wrong-digest",
    name: "§7.14 corruption: bytes stored under a digest they do not hash to → get and getRecursive raise CorruptionError",
    requires: ["write", "corruption", "isolated"],
    async run(ctx) {
      const corrupt = corruptHook(ctx);
      // A root whose stored bytes are another valid directory.
      await expectUpload(ctx, "upload [A, B]", [A, B], dB);
      await expectOk(ctx, `corrupt(B, bytes of WITH_KEEP)`, () => corrupt(dB, encodeDirectory(WITH_KEEP)));
      await expectGetCorrupt(ctx, dB, "B's bytes replaced by WITH_KEEP's");
      await expectRecursiveCorrupt(ctx, dB, [], "B's bytes replaced by WITH_KEEP's");

      // A directory below the root.
      await expectOk(ctx, "put(A)", () => ctx.service.put(A));
      await expectUpload(ctx, "upload [A, C]", [A, C], dC);
      await expectOk(ctx, `corrupt(A, bytes of WITH_KEEP)`, () => corrupt(dA, encodeDirectory(WITH_KEEP)));
      await expectGetCorrupt(ctx, dA, "A's bytes replaced by WITH_KEEP's");
      await expectRecursiveCorrupt(ctx, dC, [dC], "C's child A replaced by WITH_KEEP");

      // Bytes that are not a Directory at all.
      await expectOk(ctx, "corrupt(D, ff ff ff)", () => corrupt(dD, Uint8Array.from([0xff, 0xff, 0xff])));
      await expectGetCorrupt(ctx, dD, "stored bytes ff ff ff");
      await expectRecursiveCorrupt(ctx, dD, [], "stored bytes ff ff ff");
    },
  },
  {
    id: "corruption.non-canonical",
    name: "stored bytes that hash right but are not canonical or not valid → get and getRecursive raise CorruptionError",
    requires: ["write", "corruption", "isolated"],
    async run(ctx) {
      const corrupt = corruptHook(ctx);
      const withKeep = encodeDirectory(WITH_KEEP);
      const cases: [string, Uint8Array][] = [
        // WITH_KEEP followed by an unknown field 4 (varint 1): decodes under lenient protobuf, not canonical.
        ["WITH_KEEP plus an unknown field", Uint8Array.from([...withKeep, 0x20, 0x01])],
        // A file entry with an empty name written out explicitly (a default value, which canonical form omits).
        ["a file entry with an explicit empty name", Uint8Array.from([0x12, 0x02, 0x0a, 0x00])],
        // Canonical bytes of an invalid directory: files [b, a], not sorted and without digests.
        [
          "canonical bytes of an invalid directory",
          Uint8Array.from([0x12, 0x03, 0x0a, 0x01, 0x62, 0x12, 0x03, 0x0a, 0x01, 0x61]),
        ],
      ];
      for (const [what, bytes] of cases) {
        const digest = Digest.of(bytes);
        await expectOk(ctx, `corrupt(${what})`, () => corrupt(digest, bytes));
        await expectGetCorrupt(ctx, digest, what);
        await expectRecursiveCorrupt(ctx, digest, [], what);
      }
    },
  },
];
