/** fast-check arbitraries for valid directories (test-only; excluded from the build). */
import fc from "fast-check";
import {
  compareBytes,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
  type Directory,
} from "./model.js";

/** A valid name: 1..255 bytes, no '/' or NUL, not '.' or '..'. */
export const arbitraryName = () =>
  fc
    .uint8Array({ minLength: 1, maxLength: 12 })
    .map((b) => b.map((x) => (x === 0x2f || x === 0 ? 0x41 : x)))
    .filter((b) => !(b.length === 1 && b[0] === 0x2e) && !(b.length === 2 && b[0] === 0x2e && b[1] === 0x2e));

const digestBytes = () => fc.uint8Array({ minLength: 32, maxLength: 32 });

export function arbitraryDirectory(): fc.Arbitrary<Directory> {
  return fc
    .uniqueArray(fc.tuple(arbitraryName(), fc.constantFrom(0, 1, 2)), {
      maxLength: 12,
      selector: ([n]) => Buffer.from(n).toString("hex"),
    })
    .chain((entries) =>
      fc.tuple(
        fc.constant(entries),
        fc.array(fc.tuple(digestBytes(), fc.bigInt({ min: 0n, max: 1n << 58n }), fc.boolean()), {
          minLength: entries.length,
          maxLength: entries.length,
        }),
        fc.array(
          fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => b.map((x) => (x === 0 ? 0x2f : x))),
          {
            minLength: entries.length,
            maxLength: entries.length,
          },
        ),
      ),
    )
    .map(([entries, attrs, targets]) => {
      const sorted = entries.map((e, i) => ({ name: e[0], kind: e[1], attr: attrs[i], target: targets[i] }));
      sorted.sort((a, b) => compareBytes(a.name, b.name));
      return makeDirectory({
        directories: sorted.filter((e) => e.kind === 0).map((e) => makeDirectoryNode(e.name, e.attr[0], e.attr[1])),
        files: sorted.filter((e) => e.kind === 1).map((e) => makeFileNode(e.name, e.attr[0], e.attr[1], e.attr[2])),
        symlinks: sorted.filter((e) => e.kind === 2).map((e) => makeSymlinkNode(e.name, e.target)),
      });
    });
}
