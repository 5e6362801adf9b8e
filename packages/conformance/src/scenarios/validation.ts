/**
 * Spec §7.12: every validation rule of §2, each broken alone, is rejected and
 * nothing is stored; and the limits themselves are accepted.
 */
import {
  type Digest,
  type Directory,
  directoryDigest,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
} from "@castore-ts/core";
import {
  type ExpectedCode,
  expectAbsent,
  expectGet,
  expectOk,
  expectRecursive,
  expectRejects,
  expectUpload,
  expectUploadFails,
} from "../checks.js";
import type { Scenario, ScenarioContext } from "../types.js";
import { A, dA } from "./common.js";

interface Case {
  what: string;
  directory: Directory;
}

const bytes = (...b: number[]) => Uint8Array.from(b);
const file = (name: string | Uint8Array, digest: Uint8Array = dA.bytes) => makeFileNode(name, digest, 0);
const link = (name: string | Uint8Array, target: string | Uint8Array = "target") => makeSymlinkNode(name, target);
/** An entry for the empty directory A; an upload of a directory with such entries sends A first. */
const dir = (name: string | Uint8Array, digest: Uint8Array = dA.bytes, size: bigint = 0n) =>
  makeDirectoryNode(name, digest, size);

const files = (...f: ReturnType<typeof file>[]) => makeDirectory({ files: f });
const links = (...s: ReturnType<typeof link>[]) => makeDirectory({ symlinks: s });
const dirs = (...d: ReturnType<typeof dir>[]) => makeDirectory({ directories: d });

/** Sends A first when the directory has entries (they all refer to A here), so the only fault is the rule. */
function uploadOf(directory: Directory): Directory[] {
  return directory.directories.length > 0 ? [A, directory] : [directory];
}

async function expectRejected(ctx: ScenarioContext, c: Case, codes: ExpectedCode[]): Promise<void> {
  const withChildren = c.directory.directories.length > 0;
  if (!withChildren) await expectRejects(ctx, `put(${c.what})`, () => ctx.service.put(c.directory), codes);
  await expectUploadFails(ctx, `upload [${withChildren ? "A, " : ""}${c.what}]`, uploadOf(c.directory), codes);
  await expectAbsent(ctx, [directoryDigest(c.directory)], `${c.what} is invalid`);
}

function rule(id: string, name: string, cases: Case[], codes: ExpectedCode[] = ["VALIDATION"]): Scenario {
  return {
    id,
    name,
    requires: ["write"],
    async run(ctx) {
      for (const c of cases) await expectRejected(ctx, c, codes);
    },
  };
}

const UINT64_MAX = 2n ** 64n - 1n;

export const validationScenarios: Scenario[] = [
  rule(
    "validation.names",
    "§7.12 rule 1: a name that is empty, '.', '..', over 255 bytes, or holds '/' or NUL → ValidationError, nothing stored",
    [
      { what: "a file named ''", directory: files(file("")) },
      { what: "a directory named ''", directory: dirs(dir("")) },
      { what: "a symlink named ''", directory: links(link("")) },
      { what: "a file named '.'", directory: files(file(".")) },
      { what: "a directory named '.'", directory: dirs(dir(".")) },
      { what: "a file named '..'", directory: files(file("..")) },
      { what: "a symlink named '..'", directory: links(link("..")) },
      { what: "a file with a 256-byte name", directory: files(file("n".repeat(256))) },
      { what: "a file named 'a/b'", directory: files(file("a/b")) },
      { what: "a directory named 'a/b'", directory: dirs(dir("a/b")) },
      { what: "a symlink named '/'", directory: links(link("/")) },
      { what: "a file named 'a\\0b'", directory: files(file(bytes(0x61, 0, 0x62))) },
      { what: "a directory named '\\0'", directory: dirs(dir(bytes(0))) },
    ],
  ),
  rule(
    "validation.names-sorted",
    "§7.12 rule 2: a list not sorted bytewise, or a name twice → ValidationError, nothing stored",
    [
      { what: "files [b, a]", directory: files(file("b"), file("a")) },
      { what: "directories [b, a]", directory: dirs(dir("b"), dir("a")) },
      { what: "symlinks [b, a]", directory: links(link("b"), link("a")) },
      { what: "files ['é', 'z'] (locale order, not bytewise)", directory: files(file("é"), file("z")) },
      { what: "files [a, a]", directory: files(file("a"), file("a")) },
      { what: "directory a and file a", directory: makeDirectory({ directories: [dir("a")], files: [file("a")] }) },
      { what: "file x and symlink x", directory: makeDirectory({ files: [file("x")], symlinks: [link("x")] }) },
      {
        what: "directory l and symlink l",
        directory: makeDirectory({ directories: [dir("l")], symlinks: [link("l")] }),
      },
    ],
  ),
  rule(
    "validation.file-digest-length",
    "§7.12 rule 3: a file digest that is not 32 bytes → ValidationError, nothing stored",
    [
      { what: "a file digest of 31 bytes", directory: files(file("f", new Uint8Array(31))) },
      { what: "a file digest of 33 bytes", directory: files(file("f", new Uint8Array(33))) },
      { what: "a file digest of 0 bytes", directory: files(file("f", new Uint8Array(0))) },
    ],
  ),
  // A directory entry whose digest is not 32 bytes cannot refer to a directory of the upload either,
  // so a closure error is as right as a validation error here.
  rule(
    "validation.directory-digest-length",
    "§7.12 rule 3: a directory digest that is not 32 bytes → rejected (ValidationError or ClosureError), nothing stored",
    [
      { what: "a directory digest of 31 bytes", directory: dirs(dir("d", dA.bytes.subarray(0, 31))) },
      { what: "a directory digest of 0 bytes", directory: dirs(dir("d", new Uint8Array(0))) },
    ],
    ["VALIDATION", "CLOSURE"],
  ),
  rule(
    "validation.symlink-targets",
    "§7.12 rule 4: a symlink target that is empty, over 4095 bytes, or holds NUL → ValidationError, nothing stored",
    [
      { what: "an empty symlink target", directory: links(link("l", "")) },
      { what: "a 4096-byte symlink target", directory: links(link("l", "t".repeat(4096))) },
      { what: "a symlink target holding NUL", directory: links(link("l", bytes(0x61, 0, 0x62))) },
    ],
  ),
  // Sizes that overflow cannot match the children's real sizes either.
  rule(
    "validation.size-overflow",
    "§7.12 rule 5: a directory size that overflows uint64 → rejected (ValidationError or ClosureError), nothing stored",
    [
      {
        what: "directories declaring 2^64-1 entries each",
        directory: dirs(dir("a", dA.bytes, UINT64_MAX), dir("b", dA.bytes, UINT64_MAX)),
      },
    ],
    ["VALIDATION", "CLOSURE"],
  ),
  // ---- node sizes outside uint64 (issue 14 item 6) ----
  {
    id: "validation.size-not-uint64",
    name: "§7.12 rule 5: a file or directory size of -1, -200 or 2^64 (not a uint64) → ValidationError, nothing stored",
    requires: ["write"],
    async run(ctx) {
      for (const size of [-1n, -200n, 2n ** 64n]) {
        // No encoding exists for these (a client may reject them before sending anything).
        const withFile = makeDirectory({ files: [makeFileNode("f", dA.bytes, size)] });
        await expectRejects(ctx, `put(a file of size ${size})`, () => ctx.service.put(withFile), ["VALIDATION"]);
        await expectUploadFails(ctx, `upload [a file of size ${size}]`, [withFile], ["VALIDATION"]);
        const withDir = makeDirectory({ directories: [makeDirectoryNode("d", dA.bytes, size)] });
        await expectUploadFails(ctx, `upload [A, a directory entry of size ${size}]`, [A, withDir], ["VALIDATION"]);
      }
      // Such a directory has no digest to look it up by: nothing stored means the store is still empty.
      const list = ctx.service.listDigests?.bind(ctx.service);
      if (!list || !ctx.isolated) {
        ctx.note(
          `that nothing was stored is not checked: ${list ? "the store is shared with earlier scenarios" : "the service has no listDigests"}`,
        );
        return;
      }
      const stored = await expectOk(ctx, "listDigests()", async () => {
        const out: string[] = [];
        for await (const d of list()) out.push(d.hex);
        return out;
      });
      if (stored.length > 0)
        ctx.fail(`after only rejected uploads, listDigests() listed [${stored.join(", ")}]; expected an empty store`);
    },
  },
  {
    id: "validation.wrong-types",
    name: "§2: a caller's argument of the wrong type (a string name or target, a number size or flag, a missing list, a null node; a hex string or raw bytes for a digest) → ValidationError or InvalidDigest, nothing stored",
    requires: ["write"],
    async run(ctx) {
      // What a JavaScript caller (or a cast) can hand over: each object differs from a valid one in one field.
      const node = { name: bytes(0x66), digest: dA.bytes, size: 0n, executable: false };
      const withFile = (f: object) => ({ directories: [], files: [{ ...node, ...f }], symlinks: [] });
      const cases: { what: string; value: unknown }[] = [
        { what: "a file named by a string", value: withFile({ name: "ab/" }) },
        { what: "a file whose size is a number", value: withFile({ size: 5 }) },
        { what: "a file whose executable flag is a number", value: withFile({ executable: 1 }) },
        { what: "a file whose digest is an array of numbers", value: withFile({ digest: Array.from(dA.bytes) }) },
        {
          what: "a symlink whose target is a string",
          value: { directories: [], files: [], symlinks: [{ name: bytes(0x6c), target: "t" }] },
        },
        {
          what: "a directory entry whose size is a number",
          value: { directories: [{ name: bytes(0x64), digest: dA.bytes, size: 0 }], files: [], symlinks: [] },
        },
        { what: "a directory without its files list", value: { directories: [], symlinks: [] } },
        { what: "a directory whose files list holds null", value: { directories: [], files: [null], symlinks: [] } },
        { what: "null", value: null },
      ];
      for (const c of cases) {
        const directory = c.value as Directory;
        await expectRejects(ctx, `put(${c.what})`, () => ctx.service.put(directory), ["VALIDATION"]);
        await expectUploadFails(ctx, `upload [${c.what}]`, [directory], ["VALIDATION"]);
        // Where the object can be encoded at all, what it would have been stored as must not be there.
        let encoded: Digest | undefined;
        try {
          encoded = directoryDigest(directory);
        } catch {
          // not encodable: no digest to look up
        }
        if (encoded) await expectAbsent(ctx, [encoded], `${c.what} was refused`);
      }
      const hex = dA.hex as unknown as Digest;
      const raw = dA.bytes as unknown as Digest;
      for (const [what, digest] of [
        ["a hex string", hex],
        ["raw digest bytes", raw],
        ["undefined", undefined as unknown as Digest],
      ] as const) {
        await expectRejects(ctx, `get(${what})`, () => ctx.service.get(digest), ["INVALID_DIGEST"]);
        await expectRejects(
          ctx,
          `getRecursive(${what})`,
          async () => {
            for await (const _ of ctx.service.getRecursive(digest));
          },
          ["INVALID_DIGEST"],
        );
      }
      const has = ctx.service.has?.bind(ctx.service);
      if (has) {
        await expectRejects(ctx, "has(a Digest, not an array)", () => has(dA as unknown as Digest[]), [
          "INVALID_DIGEST",
        ]);
        await expectRejects(ctx, "has([a hex string])", () => has([hex]), ["INVALID_DIGEST"]);
      }
    },
  },
  {
    id: "validation.limits-accepted",
    name: "§2 limits are accepted: 255-byte names, 4095-byte targets, any non-NUL bytes, lists sorted separately",
    requires: ["write"],
    async run(ctx) {
      const cases: Case[] = [
        { what: "a file with a 255-byte name", directory: files(file("n".repeat(255))) },
        { what: "a 4095-byte symlink target with slashes", directory: links(link("l", "/a/".repeat(1365))) },
        { what: "names '...', '.a', 'a..b', ' '", directory: files(file(" "), file("..."), file(".a"), file("a..b")) },
        { what: "names of bytes 01, 7f, ff", directory: files(file(bytes(1)), file(bytes(0x7f)), file(bytes(0xff))) },
        { what: "files ['z', 'é'] (bytewise order)", directory: files(file("z"), file("é")) },
        {
          what: "directory b and file a (lists sorted separately)",
          directory: makeDirectory({ directories: [dir("b")], files: [file("a")] }),
        },
        {
          what: "an executable file of 2^64-1 bytes",
          directory: makeDirectory({ files: [makeFileNode("big", dA.bytes, UINT64_MAX, true)] }),
        },
      ];
      for (const c of cases) {
        const digest = directoryDigest(c.directory);
        const upload = uploadOf(c.directory);
        await expectUpload(ctx, `upload [${upload.length > 1 ? "A, " : ""}${c.what}]`, upload, digest);
        await expectGet(ctx, digest, c.directory);
        await expectRecursive(ctx, digest, upload.length > 1 ? [digest, dA] : [digest]);
      }
    },
  },
];
