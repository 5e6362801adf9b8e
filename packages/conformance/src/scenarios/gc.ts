/**
 * Spec §10: garbage collection. Every scenario needs an isolated store: a
 * collection with no grace deletes whatever nothing names, other scenarios'
 * data included.
 */
import { randomBytes } from "node:crypto";
import {
  type CollectOptions,
  type CollectReport,
  Digest,
  type Directory,
  directoryDigest,
  type GarbageCollector,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  type RefService,
} from "@castore-ts/core";
import {
  collectRecursive,
  describeError,
  errorMatches,
  expectOk,
  expectUpload,
  label,
  labelList,
  upload,
} from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";

function gc(ctx: ScenarioContext): GarbageCollector {
  return ctx.instance.gc ?? ctx.fail('the instance has no collector (set instance.gc, or declare capability "gc")');
}

function refs(ctx: ScenarioContext): RefService {
  return (
    ctx.instance.refs ?? ctx.fail('the instance has no ref service (set instance.refs, or declare capability "refs")')
  );
}

/** A three-level tree (root → mid → leaf, the leaf holding a file) with its blob, not stored yet. */
interface Tree {
  tag: string;
  root: Digest;
  /** Leaves to root: the order an upload sends them. */
  directories: Directory[];
  digests: Digest[];
  blob: Digest;
  content: Uint8Array;
}

/** Bytes big enough for several chunks at snix's parameters (≥ 3 × 512 KiB). */
const MULTI_CHUNK_BYTES = 1536 * 1024 + 17;

function makeTree(tag: string, opts: { bytes?: number; shared?: { digest: Digest; size: bigint } } = {}): Tree {
  const content = randomBytes(opts.bytes ?? 64);
  const blob = Digest.of(content);
  const leaf = makeDirectory({ files: [makeFileNode(`${tag}.bin`, blob, content.length)] });
  const mid = makeDirectory({ directories: [makeDirectoryNode("leaf", directoryDigest(leaf), 1)] });
  const children = [makeDirectoryNode("mid", directoryDigest(mid), 2)];
  if (opts.shared) children.push(makeDirectoryNode("shared", opts.shared.digest, opts.shared.size));
  const root = makeDirectory({ directories: children });
  const directories = [leaf, mid, root];
  return { tag, root: directoryDigest(root), directories, digests: directories.map(directoryDigest), blob, content };
}

async function writeBlob(ctx: ScenarioContext, tree: Tree): Promise<void> {
  if (!ctx.blobs) return;
  const writer = ctx.blobs.openWriter({ signal: ctx.signal });
  await writer.write(tree.content);
  const { digest } = await expectOk(ctx, `write the blob of ${tree.tag}`, () => writer.close());
  if (!digest.equals(tree.blob))
    ctx.fail(`the blob of ${tree.tag} was stored as ${label(digest)}, not ${label(tree.blob)}`);
}

/** Stores a tree's blob, then its directories (a shared subtree must be stored already). */
async function storeTree(ctx: ScenarioContext, tree: Tree, extra: Directory[] = []): Promise<Tree> {
  await writeBlob(ctx, tree);
  await expectUpload(ctx, `upload of the tree ${tree.tag}`, [...extra, ...tree.directories], tree.root);
  return tree;
}

async function collect(ctx: ScenarioContext, what: string, opts: CollectOptions): Promise<CollectReport> {
  return expectOk(ctx, what, () => gc(ctx).collect({ signal: ctx.signal, ...opts }));
}

/** The blob's chunks as the store lists them (the blob itself when it has no list). */
async function chunksOf(ctx: ScenarioContext, blob: Digest): Promise<Digest[]> {
  const stat = await expectOk(ctx, `stat(${label(blob)})`, () => ctx.blobs!.stat(blob, { chunks: true }));
  if (!stat) return ctx.fail(`stat(${label(blob)}) of a stored blob returned undefined`);
  return stat.chunks && stat.chunks.length > 0 ? stat.chunks.map((c) => c.digest) : [blob];
}

/** Every directory reads back in full, and (with blobs) the file's bytes too. */
async function expectWhole(ctx: ScenarioContext, tree: Tree, why: string): Promise<void> {
  const r = await collectRecursive(ctx.service, tree.root, { signal: ctx.signal });
  if (r.error !== undefined) ctx.fail(`${why}: getRecursive of ${tree.tag} threw ${describeError(r.error)}`);
  const got = new Set(r.digests.map((d) => d.hex));
  const missing = tree.digests.filter((d) => !got.has(d.hex));
  if (missing.length > 0) ctx.fail(`${why}: tree ${tree.tag} lost directories ${labelList(missing)}`);
  if (!ctx.blobs) return;
  const stream = await expectOk(ctx, `read the blob of ${tree.tag}`, () =>
    ctx.blobs!.read(tree.blob, { signal: ctx.signal }),
  );
  if (!stream) ctx.fail(`${why}: the blob of tree ${tree.tag} (${label(tree.blob)}) is gone`);
  const pieces: Uint8Array[] = [];
  await expectOk(ctx, `read the blob of ${tree.tag} to the end`, async () => {
    for await (const piece of stream) pieces.push(piece);
  });
  if (!Buffer.concat(pieces).equals(tree.content))
    ctx.fail(`${why}: the blob of tree ${tree.tag} reads back other bytes`);
}

/** None of the digests is stored any more (directories, then blobs or chunks). */
async function expectGone(ctx: ScenarioContext, what: string, directories: Digest[], blobs: Digest[]): Promise<void> {
  for (const d of directories) {
    if ((await expectOk(ctx, `get(${label(d)})`, () => ctx.service.get(d))) !== undefined)
      ctx.fail(`${what}: directory ${label(d)} is still stored`);
  }
  if (!ctx.blobs || blobs.length === 0) return;
  const present = await expectOk(ctx, `has(${labelList(blobs)})`, () => ctx.blobs!.has(blobs));
  const kept = blobs.filter((_, i) => present[i]);
  if (kept.length > 0) ctx.fail(`${what}: ${labelList(kept)} still stored`);
}

/** Every stored root of these trees has its directory closure: a stopped collection must leave nothing dangling. */
async function expectNoDanglingRoots(ctx: ScenarioContext, trees: Tree[], why: string): Promise<void> {
  for (const tree of trees) {
    for (const [i, digest] of tree.digests.entries()) {
      if ((await expectOk(ctx, `get(${label(digest)})`, () => ctx.service.get(digest))) === undefined) continue;
      const r = await collectRecursive(ctx.service, digest, { signal: ctx.signal });
      const want = i + 1; // leaf: itself; mid: two; root: three (a shared subtree is checked on its own)
      if (r.error !== undefined || r.digests.length < want)
        ctx.fail(
          `${why}: directory ${label(digest)} of tree ${tree.tag} is stored without its closure: ` +
            (r.error !== undefined ? describeError(r.error) : `read ${r.digests.length} of ${want} directories`),
        );
    }
  }
}

/** Up to `max` turns of the event loop: where in another task's steps this one's next step lands. */
async function randomTurns(max: number): Promise<void> {
  const n = Math.floor(Math.random() * (max + 1));
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

function refName(tag: string): string {
  return `conformance/gc/${randomBytes(4).toString("hex")}/${tag}`;
}

export const gcScenarios: Scenario[] = [
  {
    id: "gc.keeps-refs",
    name: "§10 a collection with no grace keeps every ref's tree and every keep digest's (directories, blobs, chunks) whole",
    requires: ["gc", "refs", "write", "isolated"],
    async run(ctx) {
      const referenced = await storeTree(ctx, makeTree("referenced", { bytes: MULTI_CHUNK_BYTES }));
      const kept = await storeTree(ctx, makeTree("kept"));
      await storeTree(ctx, makeTree("garbage"));
      await expectOk(ctx, "set the ref", () => refs(ctx).set(refName("referenced"), referenced.root));
      const report = await collect(ctx, "collect({ graceMs: 0, keep })", { graceMs: 0, keep: [kept.root] });
      await expectWhole(ctx, referenced, "after a collection");
      await expectWhole(ctx, kept, "after a collection");
      if (report.deleted.directory !== 3)
        ctx.fail(`the report says ${report.deleted.directory} directories were deleted; the garbage tree had 3`);
    },
  },
  {
    id: "gc.removes-unreferenced",
    name: "§10 a collection with no grace deletes an unreferenced tree: its directories, its blob and the blob's chunks, but not a subtree a ref still names",
    requires: ["gc", "refs", "write", "isolated"],
    async run(ctx) {
      const shared = await storeTree(ctx, makeTree("shared"));
      const sharedNode = { digest: shared.root, size: 3n };
      const referenced = await storeTree(ctx, makeTree("referenced", { shared: sharedNode }), shared.directories);
      const garbage = await storeTree(
        ctx,
        makeTree("garbage", { bytes: MULTI_CHUNK_BYTES, shared: sharedNode }),
        shared.directories,
      );
      const chunks = ctx.blobs ? await chunksOf(ctx, garbage.blob) : [];
      await expectOk(ctx, "set the ref", () => refs(ctx).set(refName("referenced"), referenced.root));
      const report = await collect(ctx, "collect({ graceMs: 0 })", { graceMs: 0 });
      await expectGone(ctx, "after a collection", garbage.digests, [garbage.blob, ...chunks]);
      await expectWhole(ctx, referenced, "after a collection");
      await expectWhole(ctx, shared, "after a collection (a subtree of a referenced tree)");
      if (report.deleted.directory !== 3)
        ctx.fail(`the report says ${report.deleted.directory} directories were deleted; expected 3`);
      if (ctx.blobs && report.deleted.blob < 1)
        ctx.fail(`the report says ${report.deleted.blob} blobs were deleted; expected 1`);
      if (report.deletedBytes <= 0) ctx.fail(`the report says ${report.deletedBytes} bytes were deleted`);
    },
  },
  {
    id: "gc.grace",
    name: "§10 nothing used within the grace period is deleted (default: one hour); the same garbage goes once the grace is 0",
    requires: ["gc", "write", "isolated"],
    async run(ctx) {
      const garbage = await storeTree(ctx, makeTree("young"));
      const report = await collect(ctx, "collect() with the default grace", {});
      const deleted = report.deleted.directory + report.deleted.blob + report.deleted.chunk;
      if (deleted !== 0) ctx.fail(`a collection with the default grace deleted ${deleted} objects written just now`);
      await expectWhole(ctx, garbage, "after a collection with the default grace");
      await collect(ctx, "collect({ graceMs: 0 })", { graceMs: 0 });
      await expectGone(ctx, "after a collection with no grace", garbage.digests, [garbage.blob]);
    },
  },
  {
    id: "gc.dry-run",
    name: "§10 a dry run deletes nothing and counts what a real collection then deletes",
    requires: ["gc", "write", "isolated"],
    async run(ctx) {
      const garbage = await storeTree(ctx, makeTree("garbage", { bytes: MULTI_CHUNK_BYTES }));
      const dry = await collect(ctx, "collect({ graceMs: 0, dryRun: true })", { graceMs: 0, dryRun: true });
      if (!dry.dryRun) ctx.fail("the dry run's report does not say dryRun");
      await expectWhole(ctx, garbage, "after a dry run");
      const real = await collect(ctx, "collect({ graceMs: 0 })", { graceMs: 0 });
      const counts = (r: CollectReport) => JSON.stringify(r.deleted);
      if (counts(dry) !== counts(real))
        ctx.fail(`the dry run counted ${counts(dry)}; the collection deleted ${counts(real)}`);
      if (dry.deleted.directory !== 3) ctx.fail(`the dry run counted ${dry.deleted.directory} directories; expected 3`);
    },
  },
  {
    id: "gc.race-uploads",
    name: "§10.2 uploads and ref changes racing collections (many rounds, random interleavings): every ref set ends whole, no stored directory loses its closure",
    requires: ["gc", "gcConcurrent", "refs", "write", "isolated"],
    timeoutMs: 120_000,
    async run(ctx) {
      const ROUNDS = 16;
      const TREES = 3;
      const kept: Tree[] = [];
      let setWon = 0;
      let setLost = 0;
      for (let round = 0; round < ROUNDS; round++) {
        // Last round's trees, unreferenced now: garbage the collection may take while the uploaders want them back.
        const old = await Promise.all(
          Array.from({ length: TREES }, (_, i) => storeTree(ctx, makeTree(`r${round}t${i}`))),
        );
        const collection = (async () => {
          await randomTurns(6);
          return gc(ctx).collect({ graceMs: 0, signal: ctx.signal });
        })();
        const uploaders = old.map(async (tree, i) => {
          await randomTurns(6);
          // Half re-upload the tree as an uploader that found the blob stored would (has, then directories); half only set a ref to it.
          if (i % 2 === 0) {
            const [present] = ctx.blobs ? await ctx.blobs.has([tree.blob]) : [true];
            if (!present) await writeBlob(ctx, tree);
            await randomTurns(3);
            const r = await upload(ctx.service, tree.directories, { signal: ctx.signal });
            if (!r.ok)
              ctx.fail(`round ${round}: the re-upload of ${tree.tag} failed at ${r.at}: ${describeError(r.error)}`);
          }
          await randomTurns(3);
          const name = refName(tree.tag);
          try {
            await refs(ctx).set(name, tree.root, { signal: ctx.signal });
            setWon++;
            return { tree, name };
          } catch (e) {
            // Refused is right when the collection took part of the tree first; anything else is not.
            if (ctx.typedErrors && !errorMatches(e, ["CLOSURE"]))
              ctx.fail(`round ${round}: set(${name}) failed: ${describeError(e)}`);
            setLost++;
            return undefined;
          }
        });
        const [report, ...outcomes] = await Promise.all([collection, ...uploaders]).catch((e) =>
          ctx.fail(`round ${round}: ${describeError(e)}`),
        );
        void report;
        for (const o of outcomes) if (o) kept.push(o.tree);
        for (const tree of kept) await expectWhole(ctx, tree, `round ${round}: a tree a ref was set to`);
        await expectNoDanglingRoots(ctx, old, `round ${round}`);
      }
      ctx.note(
        `${ROUNDS} rounds: ${setWon} ref sets succeeded and stayed whole, ${setLost} were refused (the tree was already collected)`,
      );
      if (setWon === 0) ctx.fail("no ref set succeeded in any round: the race was never exercised");
    },
  },
  {
    id: "gc.killed",
    name: "§10.3 a collection stopped at any point leaves no directory without its closure; the next one finishes the work",
    requires: ["gc", "refs", "write", "isolated"],
    timeoutMs: 120_000,
    async run(ctx) {
      const referenced = await storeTree(ctx, makeTree("referenced"));
      await expectOk(ctx, "set the ref", () => refs(ctx).set(refName("referenced"), referenced.root));
      for (let attempt = 0; attempt < 6; attempt++) {
        const garbage = await Promise.all(
          Array.from({ length: 8 }, (_, i) => storeTree(ctx, makeTree(`a${attempt}g${i}`))),
        );
        const stop = new AbortController();
        const stopAfter = attempt; // 0: during marking; later: between sweep steps
        let calls = 0;
        let stopped = false;
        try {
          await gc(ctx).collect({
            graceMs: 0,
            signal: stop.signal,
            onProgress: () => {
              if (calls++ === stopAfter) stop.abort(new Error("stopped by the scenario"));
            },
          });
        } catch (e) {
          stopped = true;
          void e; // a stopped collection may throw anything; the store's state is what is checked
        }
        await expectNoDanglingRoots(ctx, garbage, `attempt ${attempt} (${stopped ? "stopped" : "ran to the end"})`);
        await expectWhole(ctx, referenced, `attempt ${attempt}: the referenced tree`);
        await collect(ctx, "a collection after the stopped one", { graceMs: 0 });
        await expectGone(
          ctx,
          `attempt ${attempt}: after the next collection`,
          garbage.flatMap((g) => g.digests),
          garbage.map((g) => g.blob),
        );
      }
    },
  },
];
