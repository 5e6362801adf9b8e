/**
 * The closing rules of DirectoryPutter (core's service.ts): what a putter
 * does with put(), close() and abort() while its close() is still running.
 * A store's commit cannot be slowed down from here, so each scenario calls
 * the second method right after close(), before close() can have settled,
 * and accepts either outcome the rules allow where timing decides.
 */
import type { Digest, Directory } from "@castore-ts/core";
import {
  checkErrorClass,
  describeError,
  expectAbsent,
  expectClosuresComplete,
  expectOk,
  expectRecursive,
  label,
} from "../checks.js";
import { generateTree } from "../trees.js";
import type { Scenario, ScenarioContext } from "../types.js";
import { A, B, C, D, dA, dB, dC, dD } from "./common.js";

const NOT_YET = Symbol("not settled yet");

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** Starts an upload of `directories` (leaves to root), every put awaited. */
async function openUpload(ctx: ScenarioContext, names: string, directories: readonly Directory[]) {
  const putter = ctx.service.putMultipleStart();
  for (const d of directories) await expectOk(ctx, `put() of ${names}`, () => putter.put(d));
  return putter;
}

/**
 * abort() right after close() of an upload whose root is `root`: either the
 * commit stopped (abort resolves, close rejects with AbortError, the root is
 * not stored) or it had already happened (close resolves with the root, abort
 * rejects saying it came too late). Returns which.
 */
async function expectAbortDuringClose(
  ctx: ScenarioContext,
  names: string,
  directories: readonly Directory[],
  root: Digest,
  closure: Digest[],
): Promise<"aborted" | "committed" | "committed before abort()"> {
  const putter = await openUpload(ctx, names, directories);
  // abort() in the same turn as close(): nothing else can run in between.
  const closeCall = putter.close();
  const abortCall = putter.abort(new Error("conformance: abandoned during close()"));
  // A close() that settled within the call (no I/O to wait for) was over before abort() came:
  // abort() is then after close() and does nothing. Job order tells: a promise already
  // settled wins a race against one resolved after it.
  const settledAtOnce = await Promise.race([closeCall, Promise.resolve(NOT_YET)]).then(
    (v) => v !== NOT_YET,
    () => true,
  );
  const [closed, aborted] = await Promise.all([settle(closeCall), settle(abortCall)]);
  if (closed.ok && settledAtOnce) {
    if (!aborted.ok)
      ctx.fail(
        `abort() after close() of ${names} had resolved failed: ${describeError(aborted.error)}; expected it to do nothing`,
      );
    await expectRecursive(ctx, root, closure);
    return "committed before abort()";
  }
  if (closed.ok) {
    if (closed.value.hex !== root.hex)
      ctx.fail(`close() of ${names} returned ${label(closed.value)}, expected ${label(root)}`);
    if (aborted.ok) {
      ctx.fail(
        `abort() during close() of ${names} resolved, yet close() resolved with the root: the upload is stored; ` +
          "abort() must reject (ClosureError: too late) when the commit won",
      );
    }
    checkErrorClass(ctx, `abort() during close() of ${names}, after the commit won`, aborted.error, ["CLOSURE"]);
    await expectRecursive(ctx, root, closure);
    return "committed";
  }
  if (!aborted.ok) {
    ctx.fail(
      `abort() during close() of ${names} failed with ${describeError(aborted.error)}, and close() failed too ` +
        `(${describeError(closed.error)}): one of them must succeed`,
    );
  }
  checkErrorClass(ctx, `close() of ${names} with abort() during it`, closed.error, ["ABORTED"]);
  await expectAbsent(ctx, [root], "its upload was aborted during close()");
  // A store that cannot roll back may keep complete subtrees, never incomplete ones.
  await expectClosuresComplete(ctx, closure, "its upload was aborted during close()");
  return "aborted";
}

export const closingScenarios: Scenario[] = [
  {
    id: "closing.put-during-close",
    name: "put() while close() runs is rejected (ClosureError); the upload stored is what was put before close()",
    requires: ["write"],
    async run(ctx) {
      const putter = await openUpload(ctx, "A, B", [A, B]);
      const closing = settle(putter.close());
      // C would be a second root: an upload that took it could not be connected.
      const late = await settle(putter.put(C));
      const closed = await closing;
      if (late.ok)
        return ctx.fail("put(C) right after close() was accepted; expected ClosureError (the upload is closing)");
      checkErrorClass(ctx, "put(C) right after close()", late.error, ["CLOSURE"]);
      if (!closed.ok) return ctx.fail(`close() of [A, B] failed: ${describeError(closed.error)}`);
      if (closed.value.hex !== dB.hex)
        ctx.fail(`close() of [A, B] returned ${label(closed.value)}, expected ${label(dB)}`);
      await expectRecursive(ctx, dB, [dB, dA]);
      await expectAbsent(ctx, [dC], "it was put after close()");
      const after = await settle(putter.put(D));
      if (after.ok) return ctx.fail("put(D) after close() resolved was accepted; expected ClosureError");
      checkErrorClass(ctx, "put(D) after close()", after.error, ["CLOSURE"]);
      await expectAbsent(ctx, [dD], "it was put after close()");
    },
  },
  {
    id: "closing.close-twice-concurrent",
    name: "two close() calls at once: the first resolves with the root, the second is rejected (ClosureError)",
    requires: ["write"],
    async run(ctx) {
      const putter = await openUpload(ctx, "A, B, D", [A, B, D]);
      const first = settle(putter.close());
      const second = settle(putter.close());
      const [one, two] = await Promise.all([first, second]);
      if (!one.ok) return ctx.fail(`the first close() of [A, B, D] failed: ${describeError(one.error)}`);
      if (one.value.hex !== dD.hex) ctx.fail(`the first close() returned ${label(one.value)}, expected ${label(dD)}`);
      if (two.ok)
        return ctx.fail(
          `a second close() while the first ran resolved with ${label(two.value)}; expected ClosureError`,
        );
      checkErrorClass(ctx, "a second close() while the first ran", two.error, ["CLOSURE"]);
      await expectRecursive(ctx, dD, [dD, dA, dB]);
    },
  },
  {
    id: "closing.abort-during-close",
    name: "abort() while close() runs: either nothing is stored and close() rejects (AbortError), or the root is stored and abort() rejects",
    requires: ["write"],
    timeoutMs: 120_000,
    async run(ctx) {
      const outcomes: string[] = [];
      outcomes.push(`[A, B, D]: ${await expectAbortDuringClose(ctx, "[A, B, D]", [A, B, D], dD, [dD, dA, dB])}`);
      // A bigger upload keeps a store's commit busy longer, so the abort may reach it mid-commit.
      const tree = generateTree({ directories: 300, seed: 1870 });
      outcomes.push(
        `300 directories: ${await expectAbortDuringClose(ctx, "a 300-directory tree", tree.directories, tree.root, tree.digests)}`,
      );
      ctx.note(`outcomes: ${outcomes.join("; ")}`);
    },
  },
];
