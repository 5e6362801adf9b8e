import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Digest } from "./digest.js";
import { ValidationError } from "./errors.js";
import { type Directory, makeDirectory, makeDirectoryNode, makeFileNode, makeSymlinkNode } from "./model.js";
import { validateDirectory } from "./validate.js";
import { arbitraryDirectory } from "./test-arbitraries.js";

const D32 = Digest.of(new Uint8Array(0));
const bytes = (...b: number[]) => Uint8Array.from(b);
const file = (name: string | Uint8Array) => makeFileNode(name, D32, 1);
const dir = (name: string | Uint8Array) => makeDirectoryNode(name, D32, 0);
const link = (name: string | Uint8Array, target: string | Uint8Array = "t") => makeSymlinkNode(name, target);

function rejects(d: Directory, message: RegExp) {
  expect(() => validateDirectory(d)).toThrow(ValidationError);
  expect(() => validateDirectory(d)).toThrow(message);
}

describe("validateDirectory: each rule of spec §2 alone", () => {
  const badNames: [string, string | Uint8Array, RegExp][] = [
    ["empty name", "", /in (directories|files|symlinks)\[0\]: is empty/],
    ["'.'", ".", /is '\.'/],
    ["'..'", "..", /is '\.\.'/],
    ["slash", "a/b", /invalid name "a\/b" in \w+\[0\]: contains '\/'/],
    ["NUL byte", bytes(0x61, 0, 0x62), /contains a NUL byte/],
    ["256 bytes", "x".repeat(256), /256 bytes, longer than 255/],
  ];
  for (const [what, name, message] of badNames) {
    it(`rule 1: ${what} is rejected in each list`, () => {
      rejects(makeDirectory({ directories: [dir(name)] }), message);
      rejects(makeDirectory({ files: [file(name)] }), message);
      rejects(makeDirectory({ symlinks: [link(name)] }), message);
    });
  }
  it("rule 1: a 255-byte name, '...' and '.a' are fine", () => {
    validateDirectory(makeDirectory({ files: [file("..."), file(".a"), file("x".repeat(255))] }));
  });
  it("rule 2: unsorted lists are rejected, naming both names", () => {
    rejects(makeDirectory({ files: [file("b"), file("a")] }), /files not sorted: files\[1\] "a" comes after "b"/);
    rejects(makeDirectory({ directories: [dir("b"), dir("a")] }), /directories not sorted/);
    rejects(makeDirectory({ symlinks: [link("b"), link("a")] }), /symlinks not sorted/);
  });
  it("rule 2: sorting is bytewise, not by UTF-16 or locale", () => {
    // "Z" (0x5a) < "a" (0x61) < "é" (0xc3 0xa9) < 0xff
    validateDirectory(makeDirectory({ files: [file("Z"), file("a"), file("é"), file(bytes(0xff))] }));
    rejects(makeDirectory({ files: [file("a"), file("Z")] }), /not sorted/);
  });
  it("rule 2: a duplicate within a list is rejected", () => {
    rejects(makeDirectory({ files: [file("a"), file("a")] }), /duplicate name "a" in files\[1\]/);
  });
  it("rule 2: a duplicate across lists is rejected; the lists are not merged for ordering", () => {
    rejects(
      makeDirectory({ directories: [dir("a")], files: [file("a")] }),
      /duplicate name "a" in files\[0\]: also in directories\[0\]/,
    );
    rejects(makeDirectory({ files: [file("x")], symlinks: [link("x")] }), /duplicate name "x" in symlinks\[0\]/);
    rejects(makeDirectory({ directories: [dir("m")], symlinks: [link("a"), link("m")] }), /duplicate name "m"/);
    // "z" in directories before "a" in files is fine: each list is sorted on its own
    validateDirectory(makeDirectory({ directories: [dir("z")], files: [file("a")] }));
  });
  it("rule 3: digests must be 32 bytes", () => {
    rejects(
      makeDirectory({ directories: [makeDirectoryNode("a", new Uint8Array(31), 0)] }),
      /invalid digest in directories\[0\] "a": 31 bytes, expected 32/,
    );
    rejects(
      makeDirectory({ files: [makeFileNode("a", new Uint8Array(33), 0)] }),
      /invalid digest in files\[0\] "a": 33 bytes/,
    );
    rejects(makeDirectory({ files: [makeFileNode("a", new Uint8Array(0), 0)] }), /0 bytes/);
  });
  it("rule 4: symlink targets", () => {
    rejects(makeDirectory({ symlinks: [link("a", "")] }), /invalid target in symlinks\[0\] "a": is empty/);
    rejects(makeDirectory({ symlinks: [link("a", "x".repeat(4096))] }), /4096 bytes, longer than 4095/);
    rejects(makeDirectory({ symlinks: [link("a", bytes(0x61, 0))] }), /target .* contains a NUL byte/);
    validateDirectory(makeDirectory({ symlinks: [link("a", "/x/../y//z"), link("b", "x".repeat(4095))] }));
  });
  it("rule 5: size overflowing uint64 is rejected", () => {
    const max = 0xffffffffffffffffn;
    rejects(makeDirectory({ directories: [makeDirectoryNode("a", D32, max)] }), /overflows uint64/);
    rejects(
      makeDirectory({ directories: [makeDirectoryNode("a", D32, max / 2n), makeDirectoryNode("b", D32, max / 2n)] }),
      /overflows uint64/,
    );
    validateDirectory(makeDirectory({ directories: [makeDirectoryNode("a", D32, max - 1n)] }));
  });
  it("rule 5: every file and directory size is a uint64 (0 ≤ size < 2^64), checked per node", () => {
    for (const size of [-1n, -200n, 2n ** 64n, 2n ** 70n]) {
      rejects(
        makeDirectory({ files: [file("a"), makeFileNode("f", D32, size)] }),
        new RegExp(`invalid size ${size} in files\\[1\\] "f"`),
      );
      rejects(
        makeDirectory({ directories: [makeDirectoryNode("d", D32, size)] }),
        new RegExp(`invalid size ${size} in directories\\[0\\] "d"`),
      );
    }
    // Negative sizes that would bring the sum back into range are still caught.
    rejects(
      makeDirectory({
        directories: [makeDirectoryNode("a", D32, 2n ** 64n), makeDirectoryNode("b", D32, -(2n ** 63n))],
      }),
      /invalid size 18446744073709551616 in directories\[0\] "a"/,
    );
    validateDirectory(makeDirectory({ files: [makeFileNode("f", D32, 2n ** 64n - 1n)] }));
  });
});

describe("validateDirectory: rules in combination", () => {
  it("reports the first problem in list order, and every report names its node", () => {
    const d = makeDirectory({
      directories: [dir("ok"), dir("a/b")],
      files: [file(""), file("z")],
      symlinks: [link("q", "")],
    });
    rejects(d, /invalid name "a\/b" in directories\[1\]/);
  });
  it("non-UTF-8 names are shown escaped", () => {
    rejects(makeDirectory({ files: [file(bytes(0xff, 0x2f))] }), /invalid name "\\xff\/" in files\[0\]: contains '\/'/);
  });
  it("any directory built from valid parts validates", () => {
    fc.assert(
      fc.property(arbitraryDirectory(), (d) => validateDirectory(d)),
      { numRuns: 500 },
    );
  });
  it("breaking one rule in a random valid directory is always caught", () => {
    const breakers: ((d: Directory) => Directory)[] = [
      (d) => ({ ...d, files: [...d.files, file("")] }),
      (d) => ({
        ...d,
        symlinks: [
          link(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)),
          ...d.symlinks.slice(0, 0),
          link("a"),
        ],
      }),
      (d) => ({
        ...d,
        directories: [
          ...d.directories,
          makeDirectoryNode(
            bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
            new Uint8Array(3),
            0,
          ),
        ],
      }),
      (d) => ({
        ...d,
        symlinks: [
          ...d.symlinks,
          link(bytes(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), "a\0"),
        ],
      }),
    ];
    fc.assert(
      fc.property(arbitraryDirectory(), fc.constantFrom(...breakers), (d, breakIt) => {
        expect(() => validateDirectory(breakIt(d))).toThrow(ValidationError);
      }),
      { numRuns: 300 },
    );
  });
});

describe("validateDirectory: a caller's object of the wrong shape (checkDirectoryShape)", () => {
  const file = { name: Uint8Array.of(0x66), digest: new Uint8Array(32), size: 1n, executable: false };
  const cases: [what: string, value: unknown, message: string][] = [
    ["undefined", undefined, "not a Directory: got undefined"],
    ["an array", [], "not a Directory: got an array of 0"],
    ["no files list", { directories: [], symlinks: [] }, "files is undefined, expected an array of nodes"],
    ["a null node", { directories: [], files: [null], symlinks: [] }, "files[0] is null, expected a node"],
    ["a string name", { directories: [], files: [{ ...file, name: "f" }], symlinks: [] }, "files[0].name is a string"],
    ["a number size", { directories: [], files: [{ ...file, size: 1 }], symlinks: [] }, "files[0].size is a number"],
    [
      "a number flag",
      { directories: [], files: [{ ...file, executable: 1 }], symlinks: [] },
      "files[0].executable is a number, expected a boolean",
    ],
    [
      "a string target",
      { directories: [], files: [], symlinks: [{ name: Uint8Array.of(0x6c), target: "t" }] },
      "symlinks[0].target is a string, expected a Uint8Array",
    ],
  ];
  it.each(cases)("%s → ValidationError naming the field", (_what, value, message) => {
    expect(() => validateDirectory(value as Directory)).toThrow(ValidationError);
    expect(() => validateDirectory(value as Directory)).toThrow(message);
  });

  it("takes Buffers for bytes, and Uint8Arrays made in another realm", async () => {
    const { runInNewContext } = await import("node:vm");
    const foreign = runInNewContext("new Uint8Array(32)") as Uint8Array;
    expect(foreign instanceof Uint8Array).toBe(false);
    const d = makeDirectory({ files: [makeFileNode(Buffer.from("f"), foreign, 1n)] });
    expect(() => validateDirectory(d)).not.toThrow();
  });
});
