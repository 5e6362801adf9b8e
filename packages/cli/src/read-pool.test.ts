/**
 * ReadPool: files read and hashed in worker threads answer as the main
 * thread's reads do (digest, size, executable bit, whole files' bytes when
 * asked), a file that is not regular is named by its kind, and a failed
 * system call comes back as the fs error it was (code, syscall).
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blake3 } from "@castore-ts/core";
import { ReadPool, WHOLE_MAX } from "./read-pool.js";

let dir: string;
const SIZES = [0, 1, 64 * 1024 + 1, WHOLE_MAX - 1, WHOLE_MAX, 3 * WHOLE_MAX + 7];

function bytesOf(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 13 + size) & 0xff;
  return out;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-read-pool-"));
  for (const size of SIZES) writeFileSync(join(dir, `f${size}`), bytesOf(size));
  chmodSync(join(dir, "f1"), 0o755);
  execFileSync("mkfifo", [join(dir, "fifo")]);
  mkdirSync(join(dir, "sub"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("ReadPool", () => {
  for (const keepBytes of [true, false]) {
    it(`reads and hashes files of every size${keepBytes ? ", with whole files' bytes" : ""}`, async () => {
      const pool = new ReadPool(2, keepBytes);
      try {
        await pool.whenReady();
        const reads = await Promise.all(SIZES.map((size) => pool.read(Buffer.from(join(dir, `f${size}`)))));
        reads.forEach((read, i) => {
          const size = SIZES[i]!;
          const expected = bytesOf(size);
          if ("kind" in read) throw new Error(`f${size} read as a ${read.kind}`);
          expect(Buffer.from(read.digest).equals(Buffer.from(blake3(expected))), `f${size}`).toBe(true);
          expect(read.size).toBe(size);
          expect(read.executable).toBe(size === 1);
          // Whole (fits the read buffer) and wanted: its bytes come back; otherwise none.
          if (keepBytes && size < WHOLE_MAX) expect(Buffer.from(read.bytes!).equals(expected), `f${size}`).toBe(true);
          else expect(read.bytes, `f${size}`).toBeUndefined();
        });
      } finally {
        await pool.close();
      }
    });
  }

  it("names what is not a regular file, and fails a missing one with its fs error", async () => {
    const pool = new ReadPool(1, true);
    try {
      await pool.whenReady();
      expect(await pool.read(Buffer.from(join(dir, "fifo")))).toEqual({ kind: "FIFO" });
      const missing = await pool.read(Buffer.from(join(dir, "missing"))).then(
        () => expect.fail("a missing file was read"),
        (e: NodeJS.ErrnoException) => e,
      );
      expect(missing).toMatchObject({ code: "ENOENT", syscall: "open" });
      expect(missing.message).toMatch(/^ENOENT: no such file or directory/);
    } finally {
      await pool.close();
    }
    await expect(pool.read(Buffer.from(join(dir, "f1")))).rejects.toThrow(/stopped/);
  });
});
