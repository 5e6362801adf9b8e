/** Spec §7.18 (abort) and §3's "consumers may stop early; the backend then stops reading". */
import { directoryDigest } from "@castore-ts/core";
import {
  checkErrorClass,
  collectRecursive,
  describeError,
  expectAbsent,
  expectGet,
  expectOk,
  expectRecursive,
  expectRejects,
  expectUpload,
  label,
  labelList,
} from "../checks.js";
import { generateTree } from "../trees.js";
import type { Scenario, ScenarioContext } from "../types.js";
import { A, B, C, D, dA, dB, dC, dD } from "./common.js";

/** How many times a stream is cut short before checking the service still works: more than a small pool holds. */
const ROUNDS = 40;

/** After streams were cut short: a full read, a get and an upload still work. */
async function expectStillWorks(ctx: ScenarioContext, tree: ReturnType<typeof generateTree>, after: string) {
  await expectRecursive(ctx, tree.root, tree.digests);
  await expectGet(ctx, tree.root, tree.directories[tree.directories.length - 1]);
  await expectUpload(ctx, `upload [A, B] ${after}`, [A, B], dB);
}

export const abortScenarios: Scenario[] = [
  {
    id: "abort.upload",
    name: "§7.18 abort: an aborted upload stores nothing visible",
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
      await expectOk(ctx, "abort()", () => putter.abort(new Error("conformance: upload abandoned")));
      await expectRejects(ctx, "close() after abort()", () => putter.close());
      await expectRejects(ctx, "put(C) after abort()", () => putter.put(C));
      await expectAbsent(ctx, [dA, dB, dD, dC], "their upload was aborted");

      const tree = generateTree({ directories: 300, seed: 1818 });
      const big = ctx.service.putMultipleStart();
      for (const d of tree.directories) await expectOk(ctx, "put() of a 300-directory tree", () => big.put(d));
      await expectOk(ctx, "abort() of a 300-directory upload", () => big.abort());
      await expectAbsent(ctx, tree.digests, "their upload was aborted");
    },
  },
  {
    id: "abort.upload-signal",
    name: "an upload cancelled through its AbortSignal stores nothing",
    requires: ["write"],
    async run(ctx) {
      const controller = new AbortController();
      const putter = ctx.service.putMultipleStart({ signal: controller.signal });
      await expectOk(ctx, "put(A)", () => putter.put(A));
      await expectOk(ctx, "put(B)", () => putter.put(B));
      controller.abort(new Error("conformance: upload cancelled"));
      await expectRejects(ctx, "close() after the upload's signal was aborted", () => putter.close(), ["ABORTED"]);
      await expectAbsent(ctx, [dA, dB], "their upload was cancelled");
    },
  },
  {
    id: "abort.get-recursive",
    name: "§7.18 abort: an aborted getRecursive stops, and the service keeps working (40 times)",
    requires: ["write"],
    timeoutMs: 120_000,
    async run(ctx) {
      const tree = generateTree({ directories: 2000, seed: 1819 });
      await expectUpload(ctx, "upload of a 2 000-directory tree", tree.directories, tree.root);
      for (let round = 1; round <= ROUNDS; round++) {
        const controller = new AbortController();
        const it = ctx.service.getRecursive(tree.root, { signal: controller.signal })[Symbol.asyncIterator]();
        for (let k = 0; k < 3; k++) {
          const r = await expectOk(ctx, `getRecursive(${label(tree.root)}) next()`, () => it.next());
          if (r.done) ctx.fail(`getRecursive(${label(tree.root)}) ended after ${k} of 2000 directories`);
        }
        controller.abort(new Error("conformance: consumer gave up"));
        let after: IteratorResult<unknown>;
        try {
          after = await it.next();
        } catch (e) {
          checkErrorClass(ctx, "getRecursive's next() after abort", e, ["ABORTED"]);
          continue;
        }
        if (!after.done) {
          await it.return?.();
          ctx.fail(
            `getRecursive(${label(tree.root)}) yielded another directory after its signal was aborted (round ${round})`,
          );
        }
      }
      await expectStillWorks(ctx, tree, `after ${ROUNDS} aborted reads`);
    },
  },
  {
    id: "abort.early-stop",
    name: "getRecursive early stop: a consumer breaks after the root (40 times), then further calls work",
    requires: ["write"],
    timeoutMs: 120_000,
    async run(ctx) {
      const tree = generateTree({ directories: 2000, seed: 1820 });
      await expectUpload(ctx, "upload of a 2 000-directory tree", tree.directories, tree.root);
      for (let round = 1; round <= ROUNDS; round++) {
        let first;
        try {
          for await (const d of ctx.service.getRecursive(tree.root)) {
            first = d;
            break;
          }
        } catch (e) {
          ctx.fail(
            `getRecursive(${label(tree.root)}) failed when its consumer stopped early (round ${round}): ${describeError(e)}`,
          );
        }
        if (first === undefined) return ctx.fail(`getRecursive(${label(tree.root)}) yielded nothing (round ${round})`);
        const got = directoryDigest(first);
        if (got.hex !== tree.root.hex)
          ctx.fail(`getRecursive(${label(tree.root)}) yielded ${label(got)} first; expected the root`);
      }
      await expectStillWorks(ctx, tree, `after ${ROUNDS} early stops`);
    },
  },
  {
    id: "abort.already-aborted",
    name: "get and getRecursive with an already-aborted AbortSignal reject without a result",
    requires: ["write"],
    async run(ctx) {
      await expectUpload(ctx, "upload [A, B]", [A, B], dB);
      const signal = AbortSignal.abort(new Error("conformance: cancelled before the call"));
      await expectRejects(ctx, "get(B) with an aborted signal", () => ctx.service.get(dB, { signal }), ["ABORTED"]);
      const r = await collectRecursive(ctx.service, dB, { signal });
      if (r.digests.length > 0) ctx.fail(`getRecursive(B) with an aborted signal yielded ${labelList(r.digests)}`);
      // Ending quietly would read as "B is not stored".
      if (r.error === undefined) ctx.fail("getRecursive(B) with an aborted signal ended without an error");
      checkErrorClass(ctx, "getRecursive(B) with an aborted signal", r.error, ["ABORTED"]);
      await expectRecursive(ctx, dB, [dB, dA]);
    },
  },
];
