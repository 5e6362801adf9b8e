/**
 * The assertions scenarios are written with. Each failure message says what
 * was called, what came back and what was expected, with digests in hex
 * (fixtures also by name, e.g. `B=8701f472…`).
 */
import {
  AbortError,
  BackendError,
  ClosureError,
  ConflictError,
  InvalidDigest,
  CorruptionError,
  Digest,
  type Directory,
  type DirectoryService,
  type PutMultipleOptions,
  RootToLeavesChecker,
  type SizeCheck,
  ValidationError,
  directoryDigest,
  displayName,
  encodeDirectory,
  fixtures,
} from "@castore-ts/core";
import type { ScenarioContext } from "./types.js";

/** The error classes scenarios expect, by their stable `code`. */
export type ExpectedCode = "VALIDATION" | "CLOSURE" | "CORRUPTION" | "ABORTED" | "CONFLICT" | "INVALID_DIGEST";

const CLASSES: Record<ExpectedCode, { name: string; cls: abstract new (...args: never[]) => Error }> = {
  VALIDATION: { name: "ValidationError", cls: ValidationError },
  CLOSURE: { name: "ClosureError", cls: ClosureError },
  CORRUPTION: { name: "CorruptionError", cls: CorruptionError },
  ABORTED: { name: "AbortError", cls: AbortError },
  CONFLICT: { name: "ConflictError", cls: ConflictError },
  INVALID_DIGEST: { name: "InvalidDigest", cls: InvalidDigest },
};

export function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return `${e.name}${typeof code === "string" || typeof code === "number" ? ` (code ${code})` : ""}: ${e.message}`;
  }
  return `a non-Error value: ${String(e)}`;
}

let fixtureNames: Map<string, string> | undefined;

/** A digest for messages: full hex, prefixed by the fixture's name when it is one (`B=8701…`). */
export function label(digest: Digest): string {
  fixtureNames ??= new Map(
    (
      [
        ["A", fixtures.DIRECTORY_A],
        ["B", fixtures.DIRECTORY_B],
        ["C", fixtures.DIRECTORY_C],
        ["D", fixtures.DIRECTORY_D],
        ["WITH_KEEP", fixtures.DIRECTORY_WITH_KEEP],
        ["COMPLICATED", fixtures.DIRECTORY_COMPLICATED],
        ["BROKEN", fixtures.DIRECTORY_BROKEN],
        ["NESTED", fixtures.DIRECTORY_NESTED],
        ["COMPLICATED_LEGACY", fixtures.DIRECTORY_COMPLICATED_LEGACY],
        ["NESTED_LEGACY", fixtures.DIRECTORY_NESTED_LEGACY],
        ["COMPLICATED_OVERSIZED", fixtures.DIRECTORY_COMPLICATED_OVERSIZED],
      ] as const
    ).map(([name, d]) => [directoryDigest(d).hex, name]),
  );
  const name = fixtureNames.get(digest.hex);
  return name ? `${name}=${digest.hex}` : digest.hex;
}

/** A list of digests for messages, cut short after `max`. */
export function labelList(digests: Digest[], max = 6): string {
  const shown = digests.slice(0, max).map(label);
  if (digests.length > max) shown.push(`… ${digests.length - max} more`);
  return `[${shown.join(", ")}]`;
}

/** Whether an error is of one of the classes, by `code` (works across package copies) or instanceof. */
export function errorMatches(e: unknown, codes: ExpectedCode[]): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  return codes.some((c) => code === c || e instanceof CLASSES[c].cls);
}

function expectedClasses(codes: ExpectedCode[]): string {
  return codes.map((c) => `${CLASSES[c].name} (code "${c}")`).join(" or ");
}

/**
 * Why an error means the store went away (a dropped connection, a timeout)
 * rather than answered, or undefined. A BackendError marked `unavailable`
 * always counts; the target's `transportFailure` adds what it knows (e.g.
 * gRPC's UNAVAILABLE and DEADLINE_EXCEEDED).
 */
export function transportFailure(ctx: ScenarioContext, e: unknown): string | undefined {
  const custom = ctx.target.transportFailure?.(e);
  if (custom) return custom;
  if (e instanceof BackendError && e.unavailable) return "the backend was unavailable";
  return undefined;
}

/**
 * Fails when the error is a transport failure (a rejection must be the
 * store's answer, typed or not), or, with typedErrors, unless it is of one of
 * the classes. Without typedErrors any other error counts as a rejection,
 * whatever its class or status (INTERNAL, UNKNOWN, …).
 */
export function checkErrorClass(ctx: ScenarioContext, what: string, e: unknown, codes: ExpectedCode[]): void {
  const gone = transportFailure(ctx, e);
  if (gone)
    ctx.fail(`${what} failed because the server went away (${gone}: ${describeError(e)}), not with a rejection`);
  if (!ctx.typedErrors || codes.length === 0 || errorMatches(e, codes)) return;
  ctx.fail(`${what} failed with ${describeError(e)}; expected ${expectedClasses(codes)}`);
}

function describeValue(value: unknown): string {
  if (value === undefined) return "";
  if (value instanceof Digest) return ` (returned ${label(value)})`;
  return ` (returned ${typeof value})`;
}

/** Expects `fn` to reject; checks the error's class when typed. Returns the error. */
export async function expectRejects(
  ctx: ScenarioContext,
  what: string,
  fn: () => Promise<unknown>,
  codes: ExpectedCode[] = [],
): Promise<unknown> {
  let value: unknown;
  try {
    value = await fn();
  } catch (e) {
    checkErrorClass(ctx, what, e, codes);
    return e;
  }
  const expected = codes.length > 0 && ctx.typedErrors ? ` with ${expectedClasses(codes)}` : "";
  return ctx.fail(`${what} succeeded${describeValue(value)}; expected it to fail${expected}`);
}

/** Calls `fn`, turning a rejection into a failure that says what was called. */
export async function expectOk<T>(ctx: ScenarioContext, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    return ctx.fail(`${what} failed: ${describeError(e)}`);
  }
}

export type UploadOutcome = { ok: true; root: Digest } | { ok: false; error: unknown; at: string };

/** Sends directories through one putter, in order; stops at the first failing put. Never throws. */
export async function upload(
  service: DirectoryService,
  directories: Directory[],
  opts?: PutMultipleOptions,
): Promise<UploadOutcome> {
  let putter;
  try {
    putter = service.putMultipleStart(opts);
  } catch (error) {
    return { ok: false, error, at: "putMultipleStart" };
  }
  for (let i = 0; i < directories.length; i++) {
    try {
      await putter.put(directories[i]);
    } catch (error) {
      await putter.abort(error).catch(() => {});
      return { ok: false, error, at: `put #${i + 1} of ${directories.length}` };
    }
  }
  try {
    return { ok: true, root: await putter.close() };
  } catch (error) {
    return { ok: false, error, at: "close" };
  }
}

/** Expects an upload to succeed with `expectedRoot`. */
export async function expectUpload(
  ctx: ScenarioContext,
  what: string,
  directories: Directory[],
  expectedRoot: Digest,
): Promise<void> {
  const r = await upload(ctx.service, directories);
  if (!r.ok) ctx.fail(`${what} failed at ${r.at}: ${describeError(r.error)}`);
  const hex = (r.root as Digest | undefined)?.hex;
  if (hex !== expectedRoot.hex) {
    ctx.fail(
      `${what}: close() returned ${r.root instanceof Digest ? label(r.root) : String(r.root)}, expected ${label(expectedRoot)}`,
    );
  }
}

/** Expects an upload to fail, at any put or at close (spec §3), with one of `codes` when typed. */
export async function expectUploadFails(
  ctx: ScenarioContext,
  what: string,
  directories: Directory[],
  codes: ExpectedCode[],
): Promise<void> {
  const r = await upload(ctx.service, directories);
  if (r.ok) {
    const expected = ctx.typedErrors ? ` with ${expectedClasses(codes)}` : "";
    ctx.fail(`${what} succeeded (close() returned ${label(r.root)}); expected it to fail at put or close${expected}`);
  }
  checkErrorClass(ctx, `${what} (at ${r.at})`, r.error, codes);
}

export function hexBytes(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

/** Where two directories first differ, for messages; "" when nothing is found. */
export function describeDifference(expected: Directory, actual: Directory): string {
  for (const list of ["directories", "files", "symlinks"] as const) {
    const e = expected[list] as unknown as Record<string, unknown>[];
    const a = (actual[list] ?? []) as unknown as Record<string, unknown>[];
    if (e.length !== a.length) return `${list} has ${a.length} entries, expected ${e.length}`;
    for (let i = 0; i < e.length; i++) {
      for (const field of ["name", "digest", "target", "size", "executable"]) {
        const ev = e[i][field];
        const av = a[i][field];
        if (ev === undefined) continue;
        if (ev instanceof Uint8Array) {
          if (!(av instanceof Uint8Array) || hexBytes(ev) !== hexBytes(av)) {
            const shown = av instanceof Uint8Array ? `bytes ${hexBytes(av)}` : String(av);
            return `${list}[${i}].${field} is ${shown}, expected bytes ${hexBytes(ev)} (${displayName(ev)})`;
          }
        } else if (ev !== av) {
          return `${list}[${i}].${field} is ${String(av)}, expected ${String(ev)}`;
        }
      }
    }
  }
  return "";
}

/** Expects get(digest) to return `expected`, exactly (its canonical encoding hashes to `digest`). */
export async function expectGet(ctx: ScenarioContext, digest: Digest, expected: Directory): Promise<Directory> {
  const got = await expectOk(ctx, `get(${label(digest)})`, () => ctx.service.get(digest));
  if (got === undefined) ctx.fail(`get(${label(digest)}) returned undefined; expected the stored directory`);
  let actual: Digest;
  try {
    actual = directoryDigest(got);
  } catch (e) {
    return ctx.fail(
      `get(${label(digest)}) returned something that does not encode as a Directory: ${describeError(e)}`,
    );
  }
  if (actual.hex !== digest.hex) {
    const diff = describeDifference(expected, got);
    ctx.fail(`get(${label(digest)}) returned a directory whose digest is ${actual.hex}${diff ? `: ${diff}` : ""}`);
  }
  return got;
}

export interface Collected {
  directories: Directory[];
  digests: Digest[];
  /** The error that ended the stream, if any. */
  error?: unknown;
}

/** Drains getRecursive; an error ends the collection and is returned, not thrown. */
export async function collectRecursive(
  service: DirectoryService,
  root: Digest,
  opts?: { signal?: AbortSignal },
): Promise<Collected> {
  const out: Collected = { directories: [], digests: [] };
  try {
    for await (const d of service.getRecursive(root, opts)) {
      out.directories.push(d);
      out.digests.push(directoryDigest(d));
    }
  } catch (error) {
    out.error = error;
  }
  return out;
}

/**
 * Expects getRecursive(root) to yield exactly the `expected` digests in a
 * valid root-to-leaves order: the root first, each directory after one that
 * refers to it, each once, every declared size one `sizeCheck` accepts
 * (default exact; core's RootToLeavesChecker). Strict breadth-first order is
 * not required, so tvix servers pass.
 */
export async function expectRecursive(
  ctx: ScenarioContext,
  root: Digest,
  expected: Digest[],
  sizeCheck: SizeCheck = "exact",
): Promise<void> {
  const what = `getRecursive(${label(root)})`;
  const checker = new RootToLeavesChecker(root, { sizeCheck });
  const got: Digest[] = [];
  let error: unknown;
  let orderProblem: string | undefined;
  try {
    for await (const d of ctx.service.getRecursive(root)) {
      const bytes = encodeDirectory(d);
      got.push(Digest.of(bytes));
      try {
        checker.accept(d, bytes);
      } catch (e) {
        orderProblem = `directory #${got.length} (${label(got[got.length - 1])}) is out of order: ${(e as Error).message}`;
        break;
      }
    }
  } catch (e) {
    error = e;
  }
  const soFar = `yielded so far ${labelList(got)}`;
  if (orderProblem) ctx.fail(`${what}: ${orderProblem}; ${soFar}`);
  if (error !== undefined) ctx.fail(`${what} threw after ${got.length} directories: ${describeError(error)}; ${soFar}`);

  const expectedSet = new Set(expected.map((d) => d.hex));
  const gotSet = new Set(got.map((d) => d.hex));
  const missing = expected.filter((d) => !gotSet.has(d.hex));
  const extra = got.filter((d) => !expectedSet.has(d.hex));
  if (missing.length > 0 || extra.length > 0 || got.length !== expected.length) {
    const parts = [`yielded ${got.length} directories, expected ${expected.length}`];
    if (missing.length > 0) parts.push(`missing ${labelList(missing)}`);
    if (extra.length > 0) parts.push(`unexpected ${labelList(extra)}`);
    if (expected.length <= 6)
      parts.push(`got ${labelList(got)}, expected ${labelList(expected)} in a root-to-leaves order`);
    ctx.fail(`${what}: ${parts.join("; ")}`);
  }
}

/**
 * Expects nothing stored under each digest: get → undefined and getRecursive
 * → empty. On a shared store (capabilities.isolated) a present digest may
 * come from an earlier scenario, so it is noted instead of failed.
 */
export async function expectAbsent(ctx: ScenarioContext, digests: Digest[], why: string): Promise<void> {
  for (const digest of digests) {
    const got = await expectOk(ctx, `get(${label(digest)}) (${why})`, () => ctx.service.get(digest));
    if (got !== undefined && !ctx.isolated) {
      ctx.note(`absence of ${label(digest)} not checked: the store is shared with earlier scenarios`);
      continue;
    }
    if (got !== undefined) ctx.fail(`get(${label(digest)}) returned a directory; expected undefined (${why})`);
    const r = await collectRecursive(ctx.service, digest);
    if (r.error !== undefined) {
      ctx.fail(`getRecursive(${label(digest)}) threw ${describeError(r.error)}; expected an empty result (${why})`);
    }
    if (r.digests.length > 0) {
      ctx.fail(`getRecursive(${label(digest)}) yielded ${labelList(r.digests)}; expected nothing (${why})`);
    }
  }
}

/**
 * The invariant of spec §3: whatever of `digests` is visible has its whole
 * closure stored (getRecursive completes). Used where the spec does not
 * require "nothing stored" but forbids half-stored closures.
 */
export async function expectClosuresComplete(ctx: ScenarioContext, digests: Digest[], why: string): Promise<void> {
  for (const digest of digests) {
    const got = await expectOk(ctx, `get(${label(digest)}) (${why})`, () => ctx.service.get(digest));
    if (got === undefined) continue;
    const r = await collectRecursive(ctx.service, digest);
    if (r.error !== undefined) {
      ctx.fail(
        `${label(digest)} is visible but its closure is incomplete (${why}): getRecursive threw after ` +
          `${r.digests.length} directories: ${describeError(r.error)}`,
      );
    }
  }
}
