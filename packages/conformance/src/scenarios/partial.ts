/**
 * Spec §3.5 and §3.6: asking which directories a store lacks, and partial
 * uploads, which refer to stored child directories instead of carrying them.
 */
import { randomBytes } from "node:crypto";
import {
  Digest,
  type Directory,
  directoryDigest,
  directorySize,
  hasDirectories,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  supportsPartialUploads,
} from "@castore-ts/core";
import {
  collectRecursive,
  describeError,
  errorMatches,
  expectAbsent,
  expectClosuresComplete,
  expectOk,
  expectUpload,
  expectUploadFails,
  label,
  labelList,
  upload,
} from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";

/** A subtree no other run stored: a chain of `depth` directories over a leaf with a file, leaves to root. */
function freshChain(tag: string, depth = 3): Directory[] {
  const content = randomBytes(16);
  let below = makeDirectory({ files: [makeFileNode(`${tag}.bin`, Digest.of(content), content.length)] });
  const chain = [below];
  for (let i = 1; i < depth; i++) {
    below = makeDirectory({
      directories: [makeDirectoryNode(`level${i}`, directoryDigest(below), directorySize(below))],
    });
    chain.push(below);
  }
  return chain;
}

/** A parent of `children` (name → directory), not stored yet. */
function parentOf(children: Record<string, Directory>, sizes: Record<string, bigint> = {}): Directory {
  return makeDirectory({
    directories: Object.entries(children).map(([name, d]) =>
      makeDirectoryNode(name, directoryDigest(d), sizes[name] ?? directorySize(d)),
    ),
  });
}

/** Stores a whole closure (leaves to root) the ordinary way; returns its root. */
async function stored(ctx: ScenarioContext, what: string, directories: Directory[]): Promise<Directory> {
  const root = directories[directories.length - 1];
  await expectUpload(ctx, what, directories, directoryDigest(root));
  return root;
}

/** A target declaring partial uploads must say so through the service too (the CLI and sync ask it). */
async function expectAdvertised(ctx: ScenarioContext): Promise<void> {
  const says = await expectOk(ctx, "partialUploads()", () =>
    supportsPartialUploads(ctx.service, { signal: ctx.signal }),
  );
  if (!says)
    ctx.fail(
      'capability "partialUpload" is not declared missing, but the service\'s partialUploads() says no (declare why, or implement it)',
    );
}

async function partialUpload(ctx: ScenarioContext, directories: Directory[]) {
  return upload(ctx.service, directories, { partial: true, signal: ctx.signal });
}

/** Expects a partial upload to fail (with a CLOSURE error where errors are typed). */
async function expectPartialFails(ctx: ScenarioContext, what: string, directories: Directory[]): Promise<void> {
  const r = await partialUpload(ctx, directories);
  if (r.ok) return ctx.fail(`${what} succeeded (close() returned ${label(r.root)}); expected it to fail`);
  if (ctx.typedErrors && !errorMatches(r.error, ["CLOSURE"]))
    ctx.fail(`${what} failed at ${r.at} with ${describeError(r.error)}; expected a CLOSURE error`);
}

async function expectRecursiveDigests(ctx: ScenarioContext, root: Directory, want: Directory[], why: string) {
  const r = await collectRecursive(ctx.service, directoryDigest(root), { signal: ctx.signal });
  if (r.error !== undefined) ctx.fail(`${why}: getRecursive threw ${describeError(r.error)}`);
  const got = new Set(r.digests.map((d) => d.hex));
  const missing = want.map(directoryDigest).filter((d) => !got.has(d.hex));
  if (missing.length > 0 || r.digests.length !== want.length)
    ctx.fail(
      `${why}: getRecursive yielded ${r.digests.length} directories, expected ${want.length}` +
        (missing.length > 0 ? `; missing ${labelList(missing)}` : ""),
    );
}

/**
 * Waits a random number of turns: macrotasks (where a store's I/O lands) or
 * microtasks (all an in-process store's awaits take), so that the upload's
 * commit can land anywhere in a collection, between its listing and its
 * deletes too.
 */
async function randomTurns(max: number): Promise<void> {
  const n = Math.floor(Math.random() * (max + 1));
  if (Math.random() < 0.5) {
    for (let i = 0; i < n * 40; i++) await Promise.resolve();
    return;
  }
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

export const partialScenarios: Scenario[] = [
  {
    id: "partial.find-missing",
    name: "§3.5 which of stored, absent and repeated digests the store holds, in the order asked",
    requires: ["write"],
    async run(ctx) {
      const chain = freshChain("find-missing");
      const root = await stored(ctx, "upload of a 3-deep chain", chain);
      const absent = Digest.of(randomBytes(32));
      const asked = [directoryDigest(root), absent, directoryDigest(chain[0]), directoryDigest(root)];
      const got = await expectOk(ctx, "has(root, absent, leaf, root)", () =>
        hasDirectories(ctx.service, asked, { signal: ctx.signal }),
      );
      const want = [true, false, true, true];
      if (got.length !== want.length || got.some((g, i) => g !== want[i]))
        ctx.fail(`has(root, absent, leaf, root) answered [${got.join(", ")}]; expected [${want.join(", ")}]`);
      const none = await expectOk(ctx, "has([])", () => hasDirectories(ctx.service, [], { signal: ctx.signal }));
      if (none.length !== 0) ctx.fail(`has([]) answered ${none.length} values; expected none`);
    },
  },
  {
    id: "partial.stored-child",
    name: "§3.6 a partial upload refers to stored children (twice, beside a child it carries): stored, and its closure reads whole",
    requires: ["partialUpload", "write"],
    async run(ctx) {
      await expectAdvertised(ctx);
      const chain = freshChain("stored-child");
      const child = await stored(ctx, "upload of the stored child", chain);
      const carried = freshChain("carried", 1)[0];
      const mid = parentOf({ again: child, carried, stored: child });
      const top = parentOf({ mid, stored: child });
      const r = await partialUpload(ctx, [carried, mid, top]);
      if (!r.ok) return ctx.fail(`the partial upload failed at ${r.at}: ${describeError(r.error)}`);
      if (!r.root.equals(directoryDigest(top)))
        ctx.fail(`the partial upload's close() returned ${label(r.root)}, expected ${label(directoryDigest(top))}`);
      await expectRecursiveDigests(ctx, top, [top, mid, carried, ...chain], "after the partial upload");
      // A whole-closure upload still may not refer to what it does not carry (tvix's rule).
      const extra = freshChain("extra", 1)[0];
      const other = parentOf({ extra, stored: child });
      await expectUploadFails(
        ctx,
        "a whole-closure upload carrying one child and referring to a stored one it does not carry",
        [extra, other],
        ["CLOSURE"],
      );
    },
  },
  {
    id: "partial.absent-child",
    name: "§3.6 a partial upload referring to a directory the store lacks fails, and stores nothing",
    requires: ["partialUpload", "write"],
    async run(ctx) {
      await expectAdvertised(ctx);
      const missing = freshChain("absent-child");
      const carried = freshChain("carried-absent", 1)[0];
      const top = parentOf({ carried, missing: missing[missing.length - 1] });
      await expectPartialFails(ctx, "a partial upload referring to a directory the store lacks", [carried, top]);
      await expectAbsent(ctx, [directoryDigest(top), directoryDigest(carried)], "the failed partial upload");
    },
  },
  {
    id: "partial.wrong-size",
    name: "§3.6 a partial upload declaring a wrong size for a stored child fails, and stores nothing",
    requires: ["partialUpload", "write"],
    async run(ctx) {
      await expectAdvertised(ctx);
      const chain = freshChain("wrong-size");
      const child = await stored(ctx, "upload of the stored child", chain);
      for (const wrong of [directorySize(child) + 1n, directorySize(child) - 1n]) {
        const top = parentOf({ stored: child }, { stored: wrong });
        await expectPartialFails(
          ctx,
          `a partial upload declaring size ${wrong} for a stored child of size ${directorySize(child)}`,
          [top],
        );
        await expectAbsent(ctx, [directoryDigest(top)], `the partial upload declaring size ${wrong}`);
      }
    },
  },
  {
    id: "partial.gc-race",
    name: "§3.6 §10.2 partial uploads racing collections: each either fails or leaves its whole closure stored",
    requires: ["partialUpload", "gc", "gcConcurrent", "write", "isolated"],
    timeoutMs: 120_000,
    async run(ctx) {
      await expectAdvertised(ctx);
      const gc =
        ctx.instance.gc ?? ctx.fail('the instance has no collector (set instance.gc, or declare capability "gc")');
      const ROUNDS = 16;
      let won = 0;
      let lost = 0;
      let whole = 0;
      for (let round = 0; round < ROUNDS; round++) {
        // Unreferenced and old once the collection starts (no grace): garbage it may take while the uploads want it.
        const roots = await Promise.all(
          [0, 1, 2].map((i) => stored(ctx, `round ${round}: upload of chain ${i}`, freshChain(`r${round}c${i}`, 4))),
        );
        const collection = (async () => {
          await randomTurns(6);
          return gc.collect({ graceMs: 0, signal: ctx.signal });
        })();
        const uploads = roots.map(async (root, i) => {
          await randomTurns(6);
          const top = parentOf({ kept: root });
          const r = await partialUpload(ctx, [top]);
          if (r.ok) {
            won++;
            return top;
          }
          // Refused is right when the collection took the child first; anything else is not.
          if (ctx.typedErrors && !errorMatches(r.error, ["CLOSURE"]))
            ctx.fail(`round ${round}: partial upload ${i} failed at ${r.at}: ${describeError(r.error)}`);
          lost++;
          return undefined;
        });
        const [, ...tops] = await Promise.all([collection, ...uploads]).catch((e) =>
          ctx.fail(`round ${round}: ${describeError(e)}`),
        );
        // Unreferenced, a tree the upload made may be collected too, parents first: what remains must read whole.
        for (const [i, top] of tops.entries()) {
          if (!top) continue;
          const r = await collectRecursive(ctx.service, directoryDigest(top), { signal: ctx.signal });
          if (r.error !== undefined || (r.digests.length !== 0 && r.digests.length !== 5))
            ctx.fail(
              `round ${round}: partial upload ${i} succeeded, but its tree is stored without its closure: ` +
                (r.error !== undefined ? describeError(r.error) : `read ${r.digests.length} of 5 directories`),
            );
          if (r.digests.length === 5) whole++;
        }
        await expectClosuresComplete(ctx, roots.map(directoryDigest), `round ${round}: the stored children`);
      }
      ctx.note(
        `${ROUNDS} rounds: ${won} partial uploads succeeded (${whole} still stored, whole; the rest collected whole), ` +
          `${lost} were refused (the child was collected first)`,
      );
      if (won === 0) ctx.fail("no partial upload succeeded in any round: the race was never exercised");
    },
  },
];
