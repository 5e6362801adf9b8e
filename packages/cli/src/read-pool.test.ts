/**
 * ReadPool: files read and hashed in worker threads answer as the main
 * thread's reads do (digest, size, executable bit, whole files' bytes when
 * asked), a file that is not regular is named by its kind, and a failed
 * system call comes back as the fs error it was (code, syscall). The
 * process's shared pool is reused, and never holds the process open.
 */
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blake3 } from "@castore-ts/core";
import { ReadPool, WHOLE_MAX, closeSharedReadPools, sharedReadPool } from "./read-pool.js";

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

/** This module as built (dist/read-pool.js), for a child process to import. */
const BUILT_MODULE = new URL("./read-pool.ts", import.meta.url).href.replace(
  /\/src\/read-pool\.ts$/,
  "/dist/read-pool.js",
);

/** Runs `script` (an ES module, with process.argv[1] = `arg`) in a child process: its exit code and stdout. */
async function runModule(script: string, arg: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", script, arg], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const [code] = (await once(child, "exit")) as [number | null];
  return { code, out };
}

describe("ReadPool", () => {
  it("reads and hashes files of every size, with whole files' bytes only where asked (both kinds in one batch)", async () => {
    const pool = new ReadPool(2);
    try {
      await pool.whenReady();
      const asks = SIZES.flatMap((size) => [true, false].map((keepBytes) => ({ size, keepBytes })));
      const reads = await Promise.all(
        asks.map(({ size, keepBytes }) => pool.read(Buffer.from(join(dir, `f${size}`)), keepBytes)),
      );
      reads.forEach((read, i) => {
        const { size, keepBytes } = asks[i]!;
        const expected = bytesOf(size);
        const what = `f${size}, keepBytes ${keepBytes}`;
        if ("kind" in read) throw new Error(`${what} read as a ${read.kind}`);
        expect(Buffer.from(read.digest).equals(Buffer.from(blake3(expected))), what).toBe(true);
        expect(read.size).toBe(size);
        expect(read.executable).toBe(size === 1);
        // Whole (fits the read buffer) and wanted: its bytes come back; otherwise none.
        if (keepBytes && size < WHOLE_MAX) expect(Buffer.from(read.bytes!).equals(expected), what).toBe(true);
        else expect(read.bytes, what).toBeUndefined();
      });
    } finally {
      await pool.close();
    }
  });

  it("names what is not a regular file, and fails a missing one with its fs error", async () => {
    const pool = new ReadPool(1);
    try {
      await pool.whenReady();
      expect(await pool.read(Buffer.from(join(dir, "fifo")), true)).toEqual({ kind: "FIFO" });
      const missing = await pool.read(Buffer.from(join(dir, "missing")), true).then(
        () => expect.fail("a missing file was read"),
        (e: NodeJS.ErrnoException) => e,
      );
      expect(missing).toMatchObject({ code: "ENOENT", syscall: "open" });
      expect(missing.message).toMatch(/^ENOENT: no such file or directory/);
    } finally {
      await pool.close();
    }
    await expect(pool.read(Buffer.from(join(dir, "f1")), true)).rejects.toThrow(/stopped/);
  });

  it("is closed only once its threads have started: closed at once, it waits for them, then stops them", async () => {
    const pool = new ReadPool(2);
    expect(pool.ready).toBe(false);
    await pool.close();
    expect(pool.ready).toBe(true);
    await expect(pool.read(Buffer.from(join(dir, "f1")), true)).rejects.toThrow(/stopped/);
  });
});

describe("sharedReadPool", () => {
  it("is one pool per thread count for the process, replaced once it has failed", async () => {
    const pool = sharedReadPool(1);
    expect(sharedReadPool(1)).toBe(pool);
    expect(sharedReadPool(2)).not.toBe(pool);
    await pool.close(); // as if a thread had died
    const next = sharedReadPool(1);
    expect(next).not.toBe(pool);
    await next.whenReady();
    const read = await next.read(Buffer.from(join(dir, "f1")), true);
    expect("size" in read && read.size).toBe(1);
  });

  it("close() answers the reads sent to a thread, rejects those not sent yet, and lets each thread end on its own", async () => {
    const pool = new ReadPool(2);
    await pool.whenReady();
    const sent = pool.read(Buffer.from(join(dir, "f1")), true);
    await null; // the read goes to a thread in a microtask (see flush)
    const notSent = pool.read(Buffer.from(join(dir, "f1")), true).then(
      () => expect.fail("a read not sent before close() was answered"),
      (e: Error) => e,
    );
    const exitCodes = await pool.close();
    expect(await sent).toMatchObject({ size: 1 });
    expect((await notSent).message).toMatch(/stopped/);
    // 0: ended on its own once asked to; terminate() would have made it 1.
    expect(exitCodes).toEqual([0, 0]);
  });

  it("closeSharedReadPools stops the shared pools' threads; the next use starts a new pool", async () => {
    const pool = sharedReadPool(1);
    await closeSharedReadPools();
    await expect(pool.read(Buffer.from(join(dir, "f1")), true)).rejects.toThrow(/stopped/);
    const next = sharedReadPool(1);
    expect(next).not.toBe(pool);
    await next.whenReady();
    expect(await next.read(Buffer.from(join(dir, "f1")), false)).toMatchObject({ size: 1 });
  });

  it("close() keeps the process alive until its threads have ended: a top-level await of it settles", async () => {
    // Before, the first thread to end let go of the others (unref), and with nothing else to do the
    // process ended with close() unsettled (exit code 13) about half of the time: five pools in turn.
    const script = `
      import { ReadPool } from ${JSON.stringify(BUILT_MODULE)};
      for (let i = 0; i < 5; i++) {
        const pool = new ReadPool(2);
        await pool.whenReady();
        await pool.read(Buffer.from(process.argv[1]), true);
        const codes = await pool.close();
        console.log(codes.join(","));
      }
    `;
    const { code, out } = await runModule(script, join(dir, "f1"));
    expect(code).toBe(0);
    expect(out.trim().split("\n")).toEqual(Array(5).fill("0,0"));
  });

  it("does not keep a process alive once its reads are answered: the process exits on its own", async () => {
    // A child that imports through the shared pool and then has nothing left to do: its idle threads must
    // not hold it (it would never exit: the test's timeout fails it), nor be stopped while they start.
    const script = `
      import { sharedReadPool } from ${JSON.stringify(BUILT_MODULE)};
      const pool = sharedReadPool(2);
      await pool.whenReady();
      const read = await pool.read(Buffer.from(process.argv[1]), true);
      console.log(read.size);
    `;
    const { code, out } = await runModule(script, join(dir, "f1"));
    expect(code).toBe(0);
    expect(out.trim()).toBe("1");
  });
});
