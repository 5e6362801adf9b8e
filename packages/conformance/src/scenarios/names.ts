/** Spec §7.13 (traversal over COMPLICATED) and §7.17 (names that are not UTF-8). */
import {
  type Node,
  directoryDigest,
  directorySize,
  displayName,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
  traverseTo,
} from "@castore-ts/core";
import { expectGet, expectOk, expectRecursive, expectUpload, hexBytes } from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";
import { A, COMPLICATED, WITH_KEEP, dA, dCOMPLICATED, dWITH_KEEP, rootNode } from "./common.js";

function describeNode(n: Node | undefined): string {
  if (n === undefined) return "undefined";
  const target = n.kind === "symlink" ? `→ ${displayName(n.node.target)}` : `digest ${hexBytes(n.node.digest)}`;
  return `${n.kind} ${displayName(n.node.name)} ${target}`;
}

function sameNode(a: Node | undefined, b: Node | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.kind !== b.kind || hexBytes(a.node.name) !== hexBytes(b.node.name)) return false;
  if (a.kind === "symlink") return hexBytes(a.node.target) === hexBytes((b as typeof a).node.target);
  return hexBytes(a.node.digest) === hexBytes((b as typeof a).node.digest) && a.node.size === (b as typeof a).node.size;
}

async function expectPath(ctx: ScenarioContext, root: Node, path: string | Uint8Array, expected: Node | undefined) {
  const shown = typeof path === "string" ? JSON.stringify(path) : `bytes ${hexBytes(path)}`;
  const got = await expectOk(ctx, `traverseTo(root, ${shown})`, () => traverseTo(ctx.service, root, path));
  if (!sameNode(got, expected)) {
    ctx.fail(`traverseTo(root, ${shown}) returned ${describeNode(got)}, expected ${describeNode(expected)}`);
  }
}

export const nameScenarios: Scenario[] = [
  {
    id: "names.traversal",
    name: "§7.13 traversal over COMPLICATED: '', '/', 'keep', 'keep/.keep', '//v/oid', 'aa/x', …",
    requires: ["write", "getNonRoot"],
    async run(ctx) {
      await expectUpload(ctx, "upload [WITH_KEEP, COMPLICATED]", [WITH_KEEP, COMPLICATED], dCOMPLICATED);
      const root = rootNode(dCOMPLICATED, directorySize(COMPLICATED));
      const keep: Node = { kind: "directory", node: COMPLICATED.directories[0] };
      const dotKeep: Node = { kind: "file", node: makeFileNode(".keep", fixtures.EMPTY_BLOB_DIGEST, 0) };
      const aa: Node = { kind: "symlink", node: COMPLICATED.symlinks[0] };
      if (hexBytes(keep.node.digest) !== dWITH_KEEP.hex) throw new Error("fixture COMPLICATED changed");
      const cases: [string, Node | undefined][] = [
        ["", root],
        ["/", root],
        ["keep", keep],
        ["/keep/", keep],
        ["keep/.keep", dotKeep],
        ["/keep/.keep", dotKeep],
        ["keep//.keep", dotKeep],
        [".keep", dotKeep],
        ["aa", aa],
        ["void", undefined],
        ["//v/oid", undefined],
        ["keep/.keep/foo", undefined],
        ["aa/x", undefined],
        ["keep/..", undefined],
        [".", undefined],
        ["KEEP", undefined],
      ];
      for (const [path, expected] of cases) await expectPath(ctx, root, path, expected);
    },
  },
  {
    id: "names.non-utf8",
    name: "§7.17 names and targets that are not UTF-8 (e.g. ff fe) round-trip byte for byte",
    requires: ["write"],
    async run(ctx) {
      const b = (...x: number[]) => Uint8Array.from(x);
      const directory = makeDirectory({
        directories: [makeDirectoryNode(b(0xff, 0xfe), dA, 0)],
        files: [
          makeFileNode(b(0x80), dA, 1),
          makeFileNode(b(0xc3, 0x28), dA, 2),
          makeFileNode(b(0xed, 0xa0, 0x80), dA, 3),
        ],
        symlinks: [makeSymlinkNode(b(0xe2, 0x82), b(0xfe, 0x2f, 0xff))],
      });
      const digest = directoryDigest(directory);
      await expectUpload(ctx, "upload [A, X] (X with non-UTF-8 names)", [A, directory], digest);
      await expectGet(ctx, digest, directory);
      await expectRecursive(ctx, digest, [digest, dA]);
      const root = rootNode(digest, directorySize(directory));
      await expectPath(ctx, root, b(0xff, 0xfe), { kind: "directory", node: directory.directories[0] });
      await expectPath(ctx, root, b(0xc3, 0x28), { kind: "file", node: directory.files[1] });
      await expectPath(ctx, root, b(0xe2, 0x82), { kind: "symlink", node: directory.symlinks[0] });
      // U+FFFD in UTF-8, what a lossy decode of ff would give: must not match.
      await expectPath(ctx, root, b(0xef, 0xbf, 0xbd), undefined);
    },
  },
];
