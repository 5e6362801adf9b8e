/** Spec §9: named roots (refs), with compare-and-swap and the closure check of `set`. */
import { randomBytes } from "node:crypto";
import {
  Digest,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  encodeDirectory,
  REF_NAME_MAX_BYTES,
  type RefService,
} from "@castore-ts/core";
import { expectOk, expectRejects, expectUpload, label } from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";

function refs(ctx: ScenarioContext): RefService {
  return (
    ctx.instance.refs ?? ctx.fail('the instance has no ref service (set instance.refs, or declare capability "refs")')
  );
}

/** A prefix no other run used: scenarios also run against shared stores. */
function freshPrefix(): string {
  return `conformance/${randomBytes(6).toString("hex")}/`;
}

/** Stores a blob, then a two-level tree whose file holds it; returns the root. */
async function storedTree(ctx: ScenarioContext, tag: string): Promise<Digest> {
  const content = new TextEncoder().encode(`refs scenario ${tag} ${randomBytes(8).toString("hex")}`);
  let blob = Digest.of(content);
  if (ctx.blobs) {
    const writer = ctx.blobs.openWriter({ signal: ctx.signal });
    await writer.write(content);
    blob = (await expectOk(ctx, `write the blob of ${tag}`, () => writer.close())).digest;
  }
  return uploadTreeWithFile(ctx, tag, blob, content.length);
}

async function uploadTreeWithFile(ctx: ScenarioContext, tag: string, blob: Digest, size: number): Promise<Digest> {
  const leaf = makeDirectory({ files: [makeFileNode(`${tag}.txt`, blob, size)] });
  const leafDigest = Digest.of(encodeDirectory(leaf));
  const root = makeDirectory({ directories: [makeDirectoryNode("sub", leafDigest, 1)] });
  const rootDigest = Digest.of(encodeDirectory(root));
  await expectUpload(ctx, `upload of the tree ${tag}`, [leaf, root], rootDigest);
  return rootDigest;
}

async function expectRef(ctx: ScenarioContext, name: string, want: Digest | undefined): Promise<void> {
  const got = await expectOk(ctx, `get(${name})`, () => refs(ctx).get(name, { signal: ctx.signal }));
  if (want === undefined && got !== undefined) ctx.fail(`get(${name}) returned ${label(got)}; expected no ref`);
  if (want !== undefined && !got?.equals(want))
    ctx.fail(`get(${name}) returned ${got ? label(got) : "undefined"}; expected ${label(want)}`);
}

async function expectConflict(ctx: ScenarioContext, what: string, fn: () => Promise<unknown>): Promise<void> {
  await expectRejects(ctx, what, fn, ["CONFLICT"]);
}

export const refScenarios: Scenario[] = [
  {
    id: "refs.set-get",
    name: "§9 set → get gives the digest; set again moves it; delete removes it; get of an unknown name → undefined",
    requires: ["refs", "write"],
    async run(ctx) {
      const name = `${freshPrefix()}latest`;
      const a = await storedTree(ctx, "a");
      const b = await storedTree(ctx, "b");
      await expectRef(ctx, name, undefined);
      await expectOk(ctx, `set(${name}, a)`, () => refs(ctx).set(name, a, { signal: ctx.signal }));
      await expectRef(ctx, name, a);
      await expectOk(ctx, `set(${name}, b)`, () => refs(ctx).set(name, b, { signal: ctx.signal }));
      await expectRef(ctx, name, b);
      const removed = await expectOk(ctx, `delete(${name})`, () => refs(ctx).delete(name, { signal: ctx.signal }));
      if (removed !== true) ctx.fail(`delete(${name}) of an existing ref returned ${String(removed)}; expected true`);
      await expectRef(ctx, name, undefined);
      const again = await expectOk(ctx, `delete(${name}) again`, () => refs(ctx).delete(name, { signal: ctx.signal }));
      if (again !== false) ctx.fail(`delete(${name}) of an absent ref returned ${String(again)}; expected false`);
    },
  },
  {
    id: "refs.closure-required",
    name: "§9 set refuses a root the store lacks, and a tree whose file blob is missing (ClosureError); the ref is unchanged",
    requires: ["refs", "write"],
    async run(ctx) {
      const name = `${freshPrefix()}guarded`;
      const absent = Digest.of(randomBytes(32));
      await expectRejects(ctx, `set(${name}) to an absent root`, () => refs(ctx).set(name, absent), ["CLOSURE"]);
      await expectRef(ctx, name, undefined);
      if (ctx.blobs) {
        const missingBlob = Digest.of(randomBytes(40));
        const root = await uploadTreeWithFile(ctx, "no-blob", missingBlob, 40);
        await expectRejects(
          ctx,
          `set(${name}) to a tree whose file's blob is not stored`,
          () => refs(ctx).set(name, root),
          ["CLOSURE"],
        );
        await expectRef(ctx, name, undefined);
      } else {
        ctx.note("no blob service: the missing-blob half was not checked");
      }
    },
  },
  {
    id: "refs.compare-and-swap",
    name: "§9 set and delete with expect: a wrong expectation fails with ConflictError and changes nothing; the right one changes the ref",
    requires: ["refs", "write"],
    async run(ctx) {
      const name = `${freshPrefix()}cas`;
      const [a, b, c] = [await storedTree(ctx, "a"), await storedTree(ctx, "b"), await storedTree(ctx, "c")];
      const r = refs(ctx);
      await expectOk(ctx, `set(${name}, a, expect none)`, () => r.set(name, a, { expect: null }));
      await expectConflict(ctx, `set(${name}, b, expect none) while it holds a`, () =>
        r.set(name, b, { expect: null }),
      );
      await expectConflict(ctx, `set(${name}, b, expect c) while it holds a`, () => r.set(name, b, { expect: c }));
      await expectConflict(ctx, `delete(${name}, expect b) while it holds a`, () => r.delete(name, { expect: b }));
      await expectRef(ctx, name, a);
      await expectOk(ctx, `set(${name}, b, expect a)`, () => r.set(name, b, { expect: a }));
      await expectRef(ctx, name, b);
      await expectOk(ctx, `delete(${name}, expect b)`, async () => {
        if (!(await r.delete(name, { expect: b }))) ctx.fail("delete with the right expectation returned false");
      });
      await expectRef(ctx, name, undefined);
    },
  },
  {
    id: "refs.compare-and-swap-race",
    name: "§9 of two racing swaps from one value exactly one wins; the loser gets ConflictError",
    requires: ["refs", "write", "atomicRefSwap"],
    async run(ctx) {
      const name = `${freshPrefix()}race`;
      const [a, b, c] = [await storedTree(ctx, "a"), await storedTree(ctx, "b"), await storedTree(ctx, "c")];
      const r = refs(ctx);
      await expectOk(ctx, `set(${name}, b)`, () => r.set(name, b));
      // Two writers both read b and race to replace it: one wins, the other learns of it.
      const outcomes = await Promise.allSettled([r.set(name, a, { expect: b }), r.set(name, c, { expect: b })]);
      const won = outcomes.filter((o) => o.status === "fulfilled").length;
      if (won !== 1) ctx.fail(`two racing set(…, expect b): ${won} succeeded; exactly one must`);
      const loser = outcomes.find((o) => o.status === "rejected") as PromiseRejectedResult;
      await expectConflict(ctx, "the losing racing set", () => Promise.reject(loser.reason));
      const winner = outcomes[0].status === "fulfilled" ? a : c;
      await expectRef(ctx, name, winner);
      await expectOk(ctx, `delete(${name}, expect the winner)`, async () => {
        if (!(await r.delete(name, { expect: winner }))) ctx.fail("delete with the right expectation returned false");
      });
      await expectRef(ctx, name, undefined);
    },
  },
  {
    id: "refs.list",
    name: "§9 list gives every ref under a prefix, each once, in ascending name order, and nothing outside it",
    requires: ["refs", "write"],
    async run(ctx) {
      const prefix = freshPrefix();
      const root = await storedTree(ctx, "listed");
      const names = ["b", "a/z", "a/b", "a-c", "c.1", "a"].map((n) => prefix + n);
      for (const name of names) await expectOk(ctx, `set(${name})`, () => refs(ctx).set(name, root));
      const outside = `${prefix.slice(0, -1)}-outside`;
      await expectOk(ctx, `set(${outside})`, () => refs(ctx).set(outside, root));
      const listed = await expectOk(ctx, `list(${prefix})`, async () => {
        const out: string[] = [];
        for await (const ref of refs(ctx).list({ prefix, signal: ctx.signal })) {
          if (!ref.digest.equals(root)) ctx.fail(`list: ${ref.name} holds ${label(ref.digest)}; set to ${label(root)}`);
          out.push(ref.name);
        }
        return out;
      });
      const want = [...names].sort();
      if (JSON.stringify(listed) !== JSON.stringify(want))
        ctx.fail(`list(${prefix}) gave ${JSON.stringify(listed)}; expected ${JSON.stringify(want)}`);
    },
  },
  {
    id: "refs.names",
    name: `§9 names: 1–${REF_NAME_MAX_BYTES} bytes of [A-Za-z0-9._+@=-] in '/'-separated components; anything else is a ValidationError, stored nowhere`,
    requires: ["refs", "write"],
    async run(ctx) {
      const root = await storedTree(ctx, "names");
      const prefix = freshPrefix();
      const longest = prefix + "x".repeat(REF_NAME_MAX_BYTES - prefix.length);
      for (const name of [longest, `${prefix}v1.2.3+build@x=y_z-w`]) {
        await expectOk(ctx, `set(${JSON.stringify(name)})`, () => refs(ctx).set(name, root));
        await expectRef(ctx, name, root);
      }
      const bad = [
        "",
        `${longest}x`,
        `/${prefix}a`,
        `${prefix}a/`,
        `${prefix}a//b`,
        `${prefix}./a`,
        `${prefix}../a`,
        `${prefix}sp ace`,
        `${prefix}ünï`,
        `${prefix}nul\0`,
        `${prefix}back\\slash`,
      ];
      for (const name of bad) {
        await expectRejects(ctx, `set(${JSON.stringify(name)})`, () => refs(ctx).set(name, root), ["VALIDATION"]);
        await expectRejects(ctx, `get(${JSON.stringify(name)})`, () => refs(ctx).get(name), ["VALIDATION"]);
      }
    },
  },
];
