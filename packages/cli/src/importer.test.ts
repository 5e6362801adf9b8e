/**
 * importTree in process: file digests and sizes at the read-path boundaries
 * (empty, one-shot hashing limit, read buffer size), the same through sync,
 * asynchronous and measured (auto) reads and through the spool's temporary file, an
 * interruption, and a tree deeper than PATH_MAX with its error messages.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Digest,
  blake3,
  createBlake3Hasher,
  directoryDigest,
  directorySize,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
  openBlobService,
  openDirectoryService,
} from "@castore-ts/core";
import "@castore-ts/backend-memory";
import { heldBy } from "@castore-ts/testing";
import { DEFAULT_READ_THREADS, importTree } from "./importer.js";
import { sharedReadPool } from "./read-pool.js";
import { CASTORE_CLI } from "./test-castore-cli.js";

const KiB = 1024;
const SIZES = [
  0,
  1,
  64 * KiB - 1,
  64 * KiB,
  64 * KiB + 1,
  1024 * KiB - 1,
  1024 * KiB,
  1024 * KiB + 1,
  3 * 1024 * KiB + 7,
];

let dir: string;
let tree: string;
const contents = new Map<string, Buffer>();

function b3(bytes: Buffer): string {
  const h = createBlake3Hasher();
  h.update(bytes);
  return Buffer.from(h.digest()).toString("hex");
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-importer-"));
  tree = join(dir, "tree");
  mkdirSync(join(tree, "sub", "deeper"), { recursive: true });
  for (const size of SIZES) {
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i++) bytes[i] = (i * 31 + size) & 0xff;
    const name = `f${size}`;
    contents.set(name, bytes);
    writeFileSync(join(tree, name), bytes);
  }
  chmodSync(join(tree, "f1"), 0o755);
  for (let i = 0; i < 300; i++) writeFileSync(join(tree, "sub", `s${i}`), `small ${i}\n`);
  writeFileSync(join(tree, "sub", "deeper", "x"), "x");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("importTree", () => {
  it("hashes files of every size right, in read threads or on the main thread with sync or async reads, spool in memory or spilled", async () => {
    const roots = new Set<string>();
    // The process's threads started first, and asked for at the first file: every file goes through them.
    await Promise.all([sharedReadPool(DEFAULT_READ_THREADS).whenReady(), sharedReadPool(1).whenReady()]);
    for (const [readThreads, syncIo, spoolMemoryBytes] of [
      [undefined, undefined, undefined],
      [1, undefined, 0],
      [0, undefined, undefined],
      [0, true, undefined],
      [0, false, undefined],
      [0, true, 0],
      [0, false, 100],
    ] as const) {
      const service = await openDirectoryService("memory://");
      const { digest, progress } = await importTree(service, tree, {
        readThreads,
        readThreadsAfterFiles: 0,
        syncIo,
        spoolMemoryBytes,
        spoolDir: dir,
        concurrency: 3,
      });
      roots.add(digest.hex);
      expect(progress).toMatchObject({ files: SIZES.length + 301, directories: 3, uploaded: 3 });
      const root = (await service.get(digest))!;
      expect(root.files.map((f) => Buffer.from(f.name).toString())).toEqual([...contents.keys()].sort());
      for (const f of root.files) {
        const bytes = contents.get(Buffer.from(f.name).toString())!;
        expect(f.size).toBe(BigInt(bytes.length));
        expect(Buffer.from(f.digest).toString("hex"), `${Buffer.from(f.name)}`).toBe(b3(bytes));
        expect(f.executable).toBe(Buffer.from(f.name).toString() === "f1");
      }
      await service.close();
    }
    expect(roots.size).toBe(1);
  });

  it("lists at most listAheadFiles files (plus one directory's) ahead of the hashing, and gets the same root", async () => {
    // 40 directories of 7 files each, nested in pairs: the walk must wait for
    // the hashing many times with a look-ahead of 5.
    const wide = join(dir, "list-ahead");
    for (let d = 0; d < 40; d++) {
      const at = join(wide, `d${d >> 1}`, `e${d}`);
      mkdirSync(at, { recursive: true });
      for (let f = 0; f < 7; f++) writeFileSync(join(at, `f${f}`), `file ${d}/${f}\n`);
    }
    const roots = new Set<string>();
    for (const readThreads of [0, 1, undefined]) {
      const service = await openDirectoryService("memory://");
      let mostAhead = 0;
      const { digest, progress } = await importTree(service, wide, {
        readThreads,
        listAheadFiles: readThreads === undefined ? undefined : 5,
        onProgress: (p) => (mostAhead = Math.max(mostAhead, p.listed - p.files)),
      });
      roots.add(digest.hex);
      expect(progress).toMatchObject({ files: 280, listed: 280, directories: 61 });
      if (readThreads !== undefined) {
        expect(mostAhead).toBeGreaterThan(0);
        expect(mostAhead).toBeLessThanOrEqual(5 + 7);
      }
      await service.close();
    }
    expect(roots.size).toBe(1);
  });

  it("fails with the store's error when a blob write fails while the walk is listing, not with an abort", async () => {
    // 40 directories of 20 files, listed 50 ahead: the store fails the first batch of blobs (256 files) while
    // the walk still has directories to list; the listing must stop with that error.
    const many = join(dir, "failing-store");
    for (let d = 0; d < 40; d++) {
      mkdirSync(join(many, `d${d}`), { recursive: true });
      for (let f = 0; f < 20; f++) writeFileSync(join(many, `d${d}`, `f${f}`), `blob ${d}/${f}\n`);
    }
    for (const readThreads of [0, undefined]) {
      const service = await openDirectoryService("memory://");
      const blobs = await openBlobService("memory://");
      blobs.putMany = () => Promise.reject(new Error("the disk is full (test)"));
      await expect(
        importTree(service, many, { blobs, readThreads, listAheadFiles: 50 }),
        `readThreads ${readThreads}`,
      ).rejects.toThrow(/the disk is full \(test\)/);
      await Promise.all([service.close(), blobs.close()]);
    }
  });

  it("fails naming a large file that changed between its hash and its upload, and stores neither its blob nor a directory", async () => {
    // A file over the read buffer (1 MiB) is hashed first and read again only when the store lacks it (see
    // BlobUploader). The store's `has` is where the import waits between the two reads: the file changes there.
    const changing = join(dir, "changing");
    mkdirSync(join(changing, "sub"), { recursive: true });
    writeFileSync(join(changing, "sub", "x"), "x");
    const before = Buffer.alloc(2 * 1024 * KiB, 7);
    const after = Buffer.alloc(2 * 1024 * KiB, 8);
    const beforeHex = b3(before);
    for (const readThreads of [0, undefined]) {
      writeFileSync(join(changing, "big"), before);
      const service = await openDirectoryService("memory://");
      const blobs = await openBlobService("memory://");
      const has = blobs.has.bind(blobs);
      let changed = false;
      blobs.has = (digests, opts) => {
        if (digests.some((d) => d.hex === beforeHex)) {
          writeFileSync(join(changing, "big"), after);
          changed = true;
        }
        return has(digests, opts);
      };
      await expect(importTree(service, changing, { blobs, readThreads }), `readThreads ${readThreads}`).rejects.toThrow(
        new RegExp(
          `big: read again to store it, it hashes to ${b3(after)} .* but it hashed to ${beforeHex} .*` +
            "did it change during the import\\? Nothing was stored for it",
        ),
      );
      expect(changed).toBe(true);
      // Neither version's blob is there (the writer of the second read was aborted), nor any directory: the
      // directories are sent only once every blob is stored.
      expect(await has([Digest.parse(beforeHex), Digest.parse(b3(after))])).toEqual([false, false]);
      const sub = makeDirectory({ files: [makeFileNode("x", blake3(Buffer.from("x")), 1)] });
      expect(await service.get(directoryDigest(sub))).toBeUndefined();
      await Promise.all([service.close(), blobs.close()]);
    }
  });

  it("leaves nothing on a caller's long-lived signal, through the read threads or not, with or without contents", async () => {
    const service = await openDirectoryService("memory://");
    const blobs = await openBlobService("memory://");
    const caller = new AbortController();
    const { signal } = caller;
    for (const readThreads of [undefined, 0]) {
      await importTree(service, tree, { signal, readThreads, blobs });
      await importTree(service, tree, { signal, readThreads });
    }
    expect(heldBy(signal)).toEqual({ listeners: 0, dependants: 0 });
    await Promise.all([service.close(), blobs.close()]);
  });

  it("stops with the signal's reason when interrupted", async () => {
    const service = await openDirectoryService("memory://");
    const controller = new AbortController();
    controller.abort(new Error("interrupted"));
    await expect(importTree(service, tree, { signal: controller.signal })).rejects.toThrow(/^interrupted$/);
    await service.close();
  });

  describe("a tree deeper than PATH_MAX (4 096 bytes)", () => {
    const LEVELS = 40;
    const names = Array.from({ length: LEVELS }, (_, level) => `${String(level).padStart(3, "0")}${"n".repeat(197)}`); // 200 bytes each

    /**
     * LEVELS nested directories, each with one file, and at the bottom either
     * an executable file and a symlink, or a FIFO. Built by a child process
     * that chdir()s down one name at a time, so no path it uses is longer than
     * one name (sh's cd passes whole paths and stops at PATH_MAX).
     */
    function buildDeepTree(root: string, bottom: "files" | "fifo"): void {
      const script = `
        const fs = require("node:fs");
        const [root, bottom, ...names] = process.argv.slice(1);
        process.chdir(root);
        for (const name of names) {
          fs.writeFileSync("file-" + name, "level " + name);
          fs.mkdirSync(name);
          process.chdir(name);
        }
        if (bottom === "fifo") {
          require("node:child_process").execFileSync("mkfifo", ["fifo"]);
        } else {
          fs.writeFileSync("bottom", "bottom");
          fs.chmodSync("bottom", 0o755);
          fs.symlinkSync("../bottom", "up");
        }`;
      mkdirSync(root);
      execFileSync(process.execPath, ["-e", script, root, bottom, ...names]);
    }

    /** The same tree built in memory with core's model, without the file system or the importer. */
    function expectedDigest(): string {
      let child = makeDirectory({
        files: [makeFileNode("bottom", blake3(Buffer.from("bottom")), 6, true)],
        symlinks: [makeSymlinkNode("up", "../bottom")],
      });
      for (let level = LEVELS - 1; level >= 0; level--) {
        const content = Buffer.from(`level ${names[level]}`);
        child = makeDirectory({
          directories: [makeDirectoryNode(names[level], directoryDigest(child), directorySize(child))],
          files: [makeFileNode(`file-${names[level]}`, blake3(content), content.length, false)],
        });
      }
      return directoryDigest(child).hex;
    }

    let deep: string;
    let withFifo: string;
    beforeAll(() => {
      deep = join(dir, "deep");
      buildDeepTree(deep, "files");
      withFifo = join(dir, "deep-fifo");
      buildDeepTree(withFifo, "fifo");
    });
    // Node's recursive rm walks with whole paths and fails with ENAMETOOLONG here; rm(1) does not.
    afterAll(() => execFileSync("rm", ["-rf", deep, withFifo]));

    it("imports it whole, with the digest of the same tree built in memory", async () => {
      for (const [readThreads, syncIo] of [
        [undefined, undefined],
        [0, true],
        [0, false],
      ] as const) {
        const service = await openDirectoryService("memory://");
        const { digest, progress } = await importTree(service, deep, { readThreads, syncIo });
        expect(progress).toMatchObject({ files: LEVELS + 1, directories: LEVELS + 1 });
        expect(digest.hex, `readThreads ${readThreads}, syncIo ${syncIo}`).toBe(expectedDigest());
        await service.close();
      }
    });

    it("imports a chain of 10 000 directories (the walk's recursion never outgrows the stack)", async () => {
      const CHAIN = 10_000;
      const chain = join(dir, "chain");
      mkdirSync(chain);
      execFileSync(process.execPath, [
        "-e",
        `const fs = require("node:fs"); process.chdir(process.argv[1]);
         for (let i = 0; i < ${CHAIN}; i++) { fs.writeFileSync("f", String(i)); fs.mkdirSync("d"); process.chdir("d"); }`,
        chain,
      ]);
      let expected = makeDirectory({});
      for (let level = CHAIN - 1; level >= 0; level--) {
        const content = Buffer.from(String(level));
        expected = makeDirectory({
          directories: [makeDirectoryNode("d", directoryDigest(expected), directorySize(expected))],
          files: [makeFileNode("f", blake3(content), content.length, false)],
        });
      }
      try {
        const service = await openDirectoryService("memory://");
        const { digest, progress } = await importTree(service, chain);
        expect(progress).toMatchObject({ files: CHAIN, directories: CHAIN + 1 });
        expect(digest.hex).toBe(directoryDigest(expected).hex);
        await service.close();
        // Again in a process with a third of the usual stack: the walk's synchronous recursion between
        // anchors (1 000 levels) overflowed it, as it once did the usual one under load.
        const printed = execFileSync(
          process.execPath,
          ["--stack-size=300", CASTORE_CLI, "import", chain, "--no-contents"],
          {
            stdio: ["ignore", "pipe", "ignore"],
          },
        );
        expect(printed.toString().trim()).toBe(directoryDigest(expected).hex);
      } finally {
        execFileSync("rm", ["-rf", chain]);
      }
      // Builds and walks 10 000 levels, imports them twice (in process, then in a child): about 9 s alone,
      // 14 s beside another test file and two busy loops, and once over 30 s so.
    }, 120_000);

    it("names a long path in an error by its start and its end", async () => {
      const service = await openDirectoryService("memory://");
      for (const readThreads of [undefined, 0]) {
        const error = await importTree(service, withFifo, { readThreads }).then(
          () => expect.fail("a FIFO was imported"),
          (e: Error) => e,
        );
        expect(error.message, `readThreads ${readThreads}`).toMatch(/^cannot import .*: it is a FIFO;/);
        const shown = /^cannot import (.*): it is a FIFO;/.exec(error.message)![1];
        expect(shown.length).toBeLessThan(300);
        expect(shown).toMatch(new RegExp(`^${withFifo}/000n+.*…`));
        expect(shown).toMatch(/…n+\/fifo$/);
      }
      // An error from the file system itself: the root does not exist.
      const missing = join(dir, ...Array.from({ length: 30 }, () => "x".repeat(100)));
      const enoent = await importTree(service, missing).then(
        () => expect.fail("a missing root was imported"),
        (e: NodeJS.ErrnoException) => e,
      );
      expect(enoent.code).toBe("ENOENT");
      expect(enoent.message).toMatch(
        new RegExp(`^cannot import ${dir}/x+…[x/]+: ENOENT: no such file or directory \\(lstat\\)$`),
      );
      expect(enoent.message.length).toBeLessThan(300);
      await service.close();
    });
  });
});
