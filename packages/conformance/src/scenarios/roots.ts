/**
 * Read scenarios over directories already stored (target.roots, `castore
 * conformance URL --read-only --root DIGEST`): a production server cannot
 * take test uploads, so the suite reads what it holds and checks it. They run
 * only when roots are given (runner.ts: scenariosFor).
 *
 * Every directory received is checked: it hashes to a digest that was asked
 * for or referred to, it is valid (spec §2), it arrives root to leaves, each
 * once, every declared size is within what snix accepts (spec §1.1; a legacy
 * size, up to 2·n + s, is noted, not failed: snix accepts it), and the
 * closure is complete.
 */
import {
  type Digest,
  type Directory,
  type LegacySize,
  type Node,
  RootToLeavesChecker,
  directoryDigest,
  displayName,
  directorySize,
  hexOf,
  makeDirectoryNode,
  traverseTo,
  validateDirectory,
} from "@castore-ts/core";
import { describeError, expectOk, hexBytes, label } from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";

/** Roots are a production store's: their closures may be large. */
const ROOTS_TIMEOUT_MS = 5 * 60_000;
/** Most paths traversed per root (each is a get per component). */
const MAX_PATHS_PER_ROOT = 200;
/** Most directories fetched one by one per root. */
const MAX_GETS_PER_ROOT = 1000;

function rootsOf(ctx: ScenarioContext): readonly Digest[] {
  const roots = ctx.target.roots ?? [];
  // runner.ts includes these scenarios only with roots: an empty list here is a caller's mistake.
  if (roots.length === 0) ctx.fail("no roots given: the roots.* scenarios read directories already stored");
  return roots;
}

interface Closure {
  /** The directories in the order received, root first. */
  directories: Directory[];
  byHex: Map<string, Directory>;
  legacy: LegacySize[];
}

/**
 * Reads the closure of `root` with getRecursive and checks every directory
 * as it arrives (core's RootToLeavesChecker in snix-compat mode: order,
 * validity, each once, sizes within 2·n + s, completeness). Legacy sizes are
 * collected for a note.
 */
async function readClosure(ctx: ScenarioContext, root: Digest): Promise<Closure> {
  const what = `getRecursive(${label(root)})`;
  const legacy: LegacySize[] = [];
  const checker = new RootToLeavesChecker(root, { sizeCheck: "snix-compat", onLegacySize: (l) => legacy.push(l) });
  const closure: Closure = { directories: [], byHex: new Map(), legacy };
  try {
    for await (const directory of ctx.service.getRecursive(root, { signal: ctx.signal })) {
      const n = closure.directories.length + 1;
      let digest: Digest;
      try {
        digest = checker.accept(directory);
      } catch (e) {
        return ctx.fail(`${what}: directory #${n} is not acceptable: ${describeError(e)}`);
      }
      closure.directories.push(directory);
      closure.byHex.set(digest.hex, directory);
    }
  } catch (e) {
    ctx.fail(`${what} threw after ${closure.directories.length} directories: ${describeError(e)}`);
  }
  if (closure.directories.length === 0) ctx.fail(`${what} yielded nothing: the root is not stored`);
  try {
    checker.finish();
  } catch (e) {
    ctx.fail(`${what}: the closure is incomplete: ${describeError(e)}`);
  }
  return closure;
}

function noteLegacy(ctx: ScenarioContext, root: Digest, legacy: LegacySize[]): void {
  if (legacy.length === 0) return;
  const first = legacy[0];
  ctx.note(
    `${label(root)}: ${legacy.length} DirectoryNode(s) declare a legacy size (up to 2·n + s, as older tvix/snix ` +
      `wrote; snix accepts it, castore writes n + s), e.g. ${first.name} in ${first.parent.hex} declares ` +
      `${first.declared} for ${first.child}, canonical ${first.range.canonical}`,
  );
}

/** The node a parent lists under `name`, as traverseTo returns it. */
function entryNode(parent: Directory, index: number): Node {
  const nd = parent.directories.length;
  const nf = parent.files.length;
  if (index < nd) return { kind: "directory", node: parent.directories[index] };
  if (index < nd + nf) return { kind: "file", node: parent.files[index - nd] };
  return { kind: "symlink", node: parent.symlinks[index - nd - nf] };
}

function sameNode(a: Node | undefined, b: Node): boolean {
  if (a === undefined || a.kind !== b.kind || hexBytes(a.node.name) !== hexBytes(b.node.name)) return false;
  if (b.kind === "symlink") return hexBytes((a as typeof b).node.target) === hexBytes(b.node.target);
  const other = a as Exclude<Node, { kind: "symlink" }>;
  return hexBytes(other.node.digest) === hexBytes(b.node.digest) && other.node.size === b.node.size;
}

function joinPath(parent: Uint8Array, name: Uint8Array): Uint8Array {
  if (parent.length === 0) return name;
  const out = new Uint8Array(parent.length + 1 + name.length);
  out.set(parent);
  out[parent.length] = 0x2f; // "/": names never hold one (spec §2)
  out.set(name, parent.length + 1);
  return out;
}

export const rootScenarios: Scenario[] = [
  {
    id: "roots.get",
    name: "get of each given root returns a valid directory that hashes to it",
    requires: [],
    async run(ctx: ScenarioContext) {
      for (const root of rootsOf(ctx)) {
        const got = await expectOk(ctx, `get(${label(root)})`, () => ctx.service.get(root, { signal: ctx.signal }));
        if (got === undefined) ctx.fail(`get(${label(root)}) returned undefined: the root is not stored`);
        try {
          validateDirectory(got);
        } catch (e) {
          ctx.fail(`get(${label(root)}) returned an invalid directory: ${describeError(e)}`);
        }
        const actual = directoryDigest(got);
        if (actual.hex !== root.hex) ctx.fail(`get(${label(root)}) returned a directory whose digest is ${actual.hex}`);
      }
    },
  },
  {
    id: "roots.closure",
    name: "getRecursive of each given root: root to leaves, each directory valid and once, sizes within 2·n + s, closure complete",
    requires: [],
    timeoutMs: ROOTS_TIMEOUT_MS,
    async run(ctx: ScenarioContext) {
      for (const root of rootsOf(ctx)) {
        const closure = await readClosure(ctx, root);
        ctx.note(`${label(root)}: ${closure.directories.length} directories`);
        noteLegacy(ctx, root, closure.legacy);
      }
    },
  },
  {
    id: "roots.get-each",
    name: `get of each directory in a given root's closure (up to ${MAX_GETS_PER_ROOT}) returns what getRecursive yielded`,
    requires: ["getNonRoot"],
    timeoutMs: ROOTS_TIMEOUT_MS,
    async run(ctx: ScenarioContext) {
      for (const root of rootsOf(ctx)) {
        const closure = await readClosure(ctx, root);
        for (const [hex, expected] of [...closure.byHex].slice(0, MAX_GETS_PER_ROOT)) {
          const digest = directoryDigest(expected);
          const got = await expectOk(ctx, `get(${hex})`, () => ctx.service.get(digest, { signal: ctx.signal }));
          if (got === undefined)
            ctx.fail(`get(${hex}) returned undefined, though getRecursive(${root.hex}) yielded it`);
          const actual = directoryDigest(got);
          if (actual.hex !== hex) ctx.fail(`get(${hex}) returned a directory whose digest is ${actual.hex}`);
        }
      }
    },
  },
  {
    id: "roots.traversal",
    name: `traversal below each given root: the first ${MAX_PATHS_PER_ROOT} paths, breadth first, resolve to the entries their parents list`,
    requires: ["getNonRoot"],
    timeoutMs: ROOTS_TIMEOUT_MS,
    async run(ctx: ScenarioContext) {
      for (const root of rootsOf(ctx)) {
        const closure = await readClosure(ctx, root);
        const rootDirectory = closure.directories[0];
        const rootNode: Node = { kind: "directory", node: makeDirectoryNode("", root, directorySize(rootDirectory)) };
        // Paths breadth first from the root: each entry of each directory reached, until the budget is spent.
        const queue: { path: Uint8Array; directory: Directory }[] = [
          { path: new Uint8Array(0), directory: rootDirectory },
        ];
        let checked = 0;
        while (queue.length > 0 && checked < MAX_PATHS_PER_ROOT) {
          const { path, directory } = queue.shift()!;
          const count = directory.directories.length + directory.files.length + directory.symlinks.length;
          for (let i = 0; i < count && checked < MAX_PATHS_PER_ROOT; i++) {
            const expected = entryNode(directory, i);
            const childPath = joinPath(path, expected.node.name);
            const shown = `traverseTo(${label(root)}, ${displayName(childPath)})`;
            const got = await expectOk(ctx, shown, () => traverseTo(ctx.service, rootNode, childPath));
            if (!sameNode(got, expected)) {
              ctx.fail(`${shown} returned ${got ? `${got.kind} ${displayName(got.node.name)}` : "undefined"}`);
            }
            checked++;
            if (expected.kind === "directory") {
              const child = closure.byHex.get(hexOf(expected.node.digest));
              if (child) queue.push({ path: childPath, directory: child });
            }
          }
        }
        ctx.note(`${label(root)}: ${checked} paths resolved`);
      }
    },
  },
];
