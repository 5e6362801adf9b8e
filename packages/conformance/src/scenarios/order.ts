/**
 * Spec §3.2: getRecursive yields breadth first, root first, level by level,
 * within a level in the order the parents' `directories` lists first name
 * them. Consumers accept any root-to-leaves order, so a backend that yields
 * another one (the S3 backend's closure-object order, a tvix server)
 * declares `breadthFirst` missing and says why; every other is held to it.
 */
import {
  type Directory,
  directoryDigest,
  directorySize,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
} from "@castore-ts/core";
import { collectRecursive, describeError, expectUpload, label, labelList } from "../checks.js";
import type { Scenario } from "../types.js";

function child(name: string, d: Directory) {
  return makeDirectoryNode(name, directoryDigest(d), directorySize(d));
}

/** A leaf told apart from the others by its one file's name. */
function leaf(file: string): Directory {
  return makeDirectory({ files: [makeFileNode(file, fixtures.EMPTY_BLOB_DIGEST, 0)] });
}

/**
 * R → [x → X, y → Y, z → L3]; X → [a → L1]; Y → [b → L2, c → L3].
 * Breadth first: R, X, Y, L3, L1, L2 (L3 first named on level 1).
 * Depth first would give R, X, L1, Y, L2, L3.
 */
function levelsTree() {
  const L1 = leaf("l1");
  const L2 = leaf("l2");
  const L3 = leaf("l3");
  const X = makeDirectory({ directories: [child("a", L1)] });
  const Y = makeDirectory({ directories: [child("b", L2), child("c", L3)] });
  const R = makeDirectory({ directories: [child("x", X), child("y", Y), child("z", L3)] });
  return {
    upload: [L1, L2, L3, X, Y, R],
    root: directoryDigest(R),
    breadthFirst: [R, X, Y, L3, L1, L2].map(directoryDigest),
  };
}

export const orderScenarios: Scenario[] = [
  {
    id: "order.breadth-first",
    name: "getRecursive yields level by level, in the parents' list order, where depth first differs",
    requires: ["write", "breadthFirst"],
    async run(ctx) {
      const tree = levelsTree();
      await expectUpload(ctx, "upload [L1, L2, L3, X, Y, R]", tree.upload, tree.root);
      const got = await collectRecursive(ctx.service, tree.root);
      if (got.error !== undefined) ctx.fail(`getRecursive(${label(tree.root)}) threw ${describeError(got.error)}`);
      const names = new Map(["R", "X", "Y", "L3", "L1", "L2"].map((n, i) => [tree.breadthFirst[i].hex, n]));
      const shown = (ds: typeof tree.breadthFirst) => `[${ds.map((d) => names.get(d.hex) ?? label(d)).join(", ")}]`;
      if (got.digests.map((d) => d.hex).join() !== tree.breadthFirst.map((d) => d.hex).join()) {
        ctx.fail(
          `getRecursive(${label(tree.root)}) yielded ${shown(got.digests)}, expected breadth first ${shown(tree.breadthFirst)} ` +
            `(R → [x → X, y → Y, z → L3], X → [a → L1], Y → [b → L2, c → L3]); digests ${labelList(got.digests)}`,
        );
      }
    },
  },
];
