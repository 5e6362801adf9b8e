/** Spec §7.1–§7.11: reads of fixtures, single puts and putMultiple uploads; plus what follows from §3. */
import {
  Digest,
  directoryDigest,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
} from "@castore-ts/core";
import {
  expectAbsent,
  expectClosuresComplete,
  expectGet,
  expectOk,
  expectRecursive,
  expectRejects,
  expectUpload,
  expectUploadFails,
  label,
} from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";
import { A, B, BROKEN, C, D, WITH_KEEP, dA, dB, dBROKEN, dC, dD, dWITH_KEEP } from "./common.js";

async function expectPut(ctx: ScenarioContext, what: string, directory: typeof A, expected: Digest): Promise<void> {
  const got = await expectOk(ctx, what, () => ctx.service.put(directory));
  if ((got as Digest | undefined)?.hex !== expected.hex) {
    ctx.fail(`${what} returned ${got instanceof Digest ? label(got) : String(got)}, expected ${label(expected)}`);
  }
}

export const uploadScenarios: Scenario[] = [
  {
    id: "uploads.absent",
    name: "§7.1 get of an absent digest → undefined; getRecursive → empty",
    requires: [],
    async run(ctx) {
      await expectAbsent(
        ctx,
        [Digest.of(new TextEncoder().encode("castore: never stored")), dA, dB],
        "nothing was stored",
      );
    },
  },
  {
    id: "uploads.single",
    name: "§7.2 put(A) → digest A; get(A) = A; getRecursive(A) = [A]",
    requires: ["write"],
    async run(ctx) {
      await expectPut(ctx, "put(A)", A, dA);
      await expectGet(ctx, dA, A);
      await expectRecursive(ctx, dA, [dA]);
    },
  },
  {
    id: "closure.put-child-alone",
    name: "§7.3 put(B) alone fails (children must come in the same upload), also after A is stored",
    requires: ["write"],
    async run(ctx) {
      await expectRejects(ctx, "put(B) on an empty store", () => ctx.service.put(B), ["CLOSURE"]);
      await expectAbsent(ctx, [dB], "put(B) failed");
      await expectPut(ctx, "put(A)", A, dA);
      await expectRejects(ctx, "put(B) after put(A)", () => ctx.service.put(B), ["CLOSURE"]);
      await expectAbsent(ctx, [dB], "put(B) failed");
    },
  },
  {
    id: "closure.dangling-child",
    name: "§7.4 upload [B] → fails at put or close; nothing stored",
    requires: ["write"],
    async run(ctx) {
      await expectUploadFails(ctx, "upload [B]", [B], ["CLOSURE"]);
      await expectAbsent(ctx, [dB, dA], "upload [B] failed");
    },
  },
  {
    id: "uploads.leaves-to-root",
    name: "§7.5 upload [A, B] → close = B; getRecursive(B) = [B, A]",
    requires: ["write"],
    async run(ctx) {
      await expectUpload(ctx, "upload [A, B]", [A, B], dB);
      await expectRecursive(ctx, dB, [dB, dA]);
    },
  },
  {
    id: "closure.parent-before-child",
    name: "§7.6 upload [B, A] → fails at put or close; B not stored",
    requires: ["write"],
    async run(ctx) {
      await expectUploadFails(ctx, "upload [B, A]", [B, A], ["CLOSURE"]);
      await expectAbsent(ctx, [dB], "upload [B, A] failed");
    },
  },
  {
    id: "uploads.duplicate",
    name: "§7.7 upload [A, A, C] (duplicate) → close = C; getRecursive(C) = [C, A]",
    requires: ["write"],
    async run(ctx) {
      await expectUpload(ctx, "upload [A, A, C]", [A, A, C], dC);
      await expectRecursive(ctx, dC, [dC, dA]);
    },
  },
  {
    id: "order.root-to-leaves",
    name: "§7.8 upload [A, B, D] → getRecursive(D) is D first, then A and B, each once",
    requires: ["write"],
    async run(ctx) {
      await expectUpload(ctx, "upload [A, B, D]", [A, B, D], dD);
      await expectRecursive(ctx, dD, [dD, dA, dB]);
    },
  },
  {
    id: "closure.disconnected",
    name: "§7.9 upload [A, C, B] (not connected) → close fails",
    requires: ["write"],
    async run(ctx) {
      await expectUploadFails(ctx, "upload [A, C, B]", [A, C, B], ["CLOSURE"]);
      await expectClosuresComplete(ctx, [dA, dB, dC], "after a failed upload");
    },
  },
  {
    id: "closure.wrong-size",
    name: "§7.10 upload [A, BROKEN] (declared size 42, actual 0) → fails at put or close",
    requires: ["write"],
    async run(ctx) {
      await expectUploadFails(ctx, "upload [A, BROKEN]", [A, BROKEN], ["CLOSURE"]);
      await expectAbsent(ctx, [dBROKEN], "upload [A, BROKEN] failed");
    },
  },
  {
    id: "uploads.empty-and-closed",
    name: "§7.11 empty upload → close fails; put after close fails; close twice fails",
    requires: ["write"],
    async run(ctx) {
      const empty = ctx.service.putMultipleStart();
      await expectRejects(ctx, "close() of an empty upload", () => empty.close(), ["CLOSURE"]);
      const putter = ctx.service.putMultipleStart();
      await expectOk(ctx, "put(A)", () => putter.put(A));
      const root = await expectOk(ctx, "close() of upload [A]", () => putter.close());
      if (root.hex !== dA.hex) ctx.fail(`close() of upload [A] returned ${label(root)}, expected ${label(dA)}`);
      await expectRejects(ctx, "put(B) after close()", () => putter.put(B));
      await expectRejects(ctx, "a second close()", () => putter.close());
      await expectAbsent(ctx, [dB], "B was put after close()");
    },
  },
  {
    id: "uploads.idempotent",
    name: "put is idempotent: the same directories and uploads again succeed with the same digests",
    requires: ["write"],
    async run(ctx) {
      await expectPut(ctx, "put(A)", A, dA);
      await expectPut(ctx, "put(A) again", A, dA);
      await expectPut(ctx, "put(WITH_KEEP)", WITH_KEEP, dWITH_KEEP);
      await expectPut(ctx, "put(WITH_KEEP) again", WITH_KEEP, dWITH_KEEP);
      await expectUpload(ctx, "upload [A, B]", [A, B], dB);
      await expectUpload(ctx, "upload [A, B] again", [A, B], dB);
      await expectUpload(ctx, "upload [A, B, D] (A and B already stored)", [A, B, D], dD);
      await expectRecursive(ctx, dB, [dB, dA]);
      await expectRecursive(ctx, dD, [dD, dA, dB]);
      await expectGet(ctx, dWITH_KEEP, WITH_KEEP);
    },
  },
  {
    id: "uploads.resend",
    name: "re-sending directories anywhere in an upload is ignored: [A, B, A, B, D] → D",
    requires: ["write"],
    async run(ctx) {
      await expectUpload(ctx, "upload [A, B, A, B, D]", [A, B, A, B, D], dD);
      await expectRecursive(ctx, dD, [dD, dA, dB]);
    },
  },
  {
    id: "closure.size-too-small",
    name: "a DirectoryNode declaring less than the child's size → upload fails",
    requires: ["write"],
    async run(ctx) {
      const undersized = makeDirectory({
        directories: [makeDirectoryNode("a", dA, 0), makeDirectoryNode("b", dB, 0)], // B's size is 1
      });
      await expectUploadFails(ctx, "upload [A, B, D with b declaring size 0]", [A, B, undersized], ["CLOSURE"]);
      await expectAbsent(ctx, [directoryDigest(undersized)], "its upload failed");
    },
  },
  {
    id: "uploads.leaf-entries",
    name: "put of directories without child directories: files, executables, symlinks",
    requires: ["write"],
    async run(ctx) {
      const leaf = makeDirectory({
        files: [makeFileNode("bin", dA, 2n ** 40n, true), makeFileNode("data", dB, 7)],
        symlinks: [makeSymlinkNode("link", "../data")],
      });
      const digest = directoryDigest(leaf);
      await expectPut(ctx, "put(leaf with files and a symlink)", leaf, digest);
      await expectGet(ctx, digest, leaf);
      await expectRecursive(ctx, digest, [digest]);
    },
  },
  {
    id: "uploads.get-non-root",
    name: "get of a directory that was not an upload's root",
    requires: ["write", "getNonRoot"],
    async run(ctx) {
      await expectUpload(ctx, "upload [A, B, D]", [A, B, D], dD);
      await expectGet(ctx, dB, B);
      await expectGet(ctx, dA, A);
      await expectRecursive(ctx, dB, [dB, dA]);
      await expectRecursive(ctx, dA, [dA]);
    },
  },
  {
    id: "uploads.in-progress-invisible",
    name: "an upload in progress exposes no incomplete closure",
    requires: ["write"],
    async run(ctx) {
      const putter = ctx.service.putMultipleStart();
      for (const [name, d] of [
        ["A", A],
        ["B", B],
        ["D", D],
      ] as const) {
        await expectOk(ctx, `put(${name})`, () => putter.put(d));
      }
      await expectClosuresComplete(ctx, [dA, dB, dD], "before close()");
      const root = await expectOk(ctx, "close() of upload [A, B, D]", () => putter.close());
      if (root.hex !== dD.hex) ctx.fail(`close() returned ${label(root)}, expected ${label(dD)}`);
      await expectRecursive(ctx, dD, [dD, dA, dB]);
    },
  },
  {
    id: "uploads.list-digests",
    name: "listDigests lists exactly the stored directories",
    requires: ["write", "getNonRoot"],
    async run(ctx) {
      const list = ctx.service.listDigests?.bind(ctx.service);
      if (!list) return ctx.skip("the service has no listDigests (optional in the interface)");
      await expectUpload(ctx, "upload [A, B, D]", [A, B, D], dD);
      await expectPut(ctx, "put(WITH_KEEP)", WITH_KEEP, dWITH_KEEP);
      await expectUploadFails(ctx, "upload [B, C]", [B, C], ["CLOSURE"]);
      const got = await expectOk(ctx, "listDigests()", async () => {
        const out: string[] = [];
        for await (const d of list()) out.push(d.hex);
        return out;
      });
      const expected = [dA, dB, dD, dWITH_KEEP].map((d) => d.hex);
      // A shared store also holds what earlier scenarios stored: then "exactly" becomes "at least".
      const same = (!ctx.isolated || got.length === expected.length) && expected.every((hex) => got.includes(hex));
      if (!same) {
        ctx.fail(
          `listDigests() listed [${got.join(", ")}], expected ${ctx.isolated ? "" : "at least "}[${expected.join(", ")}] (any order)`,
        );
      }
    },
  },
];
