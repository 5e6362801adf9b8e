/**
 * Blob memory through `castore serve` (spec §8: streams stay streams): one
 * blob of CASTORE_BENCH_RSS_MIB (default 4096) put into a server on an lmdb
 * store and read back, from a client in this process. The server's memory is
 * sampled after every piece written and every piece read:
 * - anonymous RSS (RssAnon: the heap and buffers; LMDB's file pages count
 *   only in RssFile, and the kernel may drop those at will), its peak during
 *   the put and during the read, against the idle server's after a warm-up
 *   write, in the same run;
 * - VmHWM, the kernel's own high-water mark of the whole RSS, file pages
 *   included, for the record.
 * Run: pnpm bench blob-rss (root), or node dist/blob-rss.js here.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import "@castore-ts/backend-grpc";
import { openBlobService } from "@castore-ts/core";
import { startCastoreServe } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";
import { noisePieces } from "./noise.js";
import { type BenchResult, recordBenchResults } from "./results.js";

const MiB = 1024 * 1024;
const SIZE_MIB = Number(process.env.CASTORE_BENCH_RSS_MIB ?? 4096);

/** Fields of /proc/PID/status, in KiB. */
function memoryOf(pid: number): { anon: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { anon: field("RssAnon"), hwm: field("VmHWM") };
}

const dir = mkdtempSync(join(tmpdir(), "castore-bench-rss-"));
const server = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", `lmdb://${dir}/store`]);
const pid = server.child.pid!;
const client = await openBlobService(server.url);
try {
  const pieces = noisePieces(88172645);
  // Warm-up: a small blob, so the store and the server's code paths are initialised before the idle figure.
  const warm = client.openWriter();
  await warm.write(new Uint8Array(3 * MiB).fill(1));
  await warm.close();
  const idle = memoryOf(pid).anon;

  let putPeak = 0;
  const t0 = performance.now();
  const writer = client.openWriter();
  for (let i = 0; i < SIZE_MIB / 4; i++) {
    await writer.write(pieces(i));
    putPeak = Math.max(putPeak, memoryOf(pid).anon);
  }
  const { digest, size } = await writer.close();
  const putSeconds = (performance.now() - t0) / 1000;
  if (size !== SIZE_MIB * MiB) throw new Error(`stored ${size} bytes, wrote ${SIZE_MIB * MiB}`);

  let readPeak = 0;
  let read = 0;
  const t1 = performance.now();
  for await (const part of (await client.read(digest))!) {
    read += part.length;
    readPeak = Math.max(readPeak, memoryOf(pid).anon);
  }
  const readSeconds = (performance.now() - t1) / 1000;
  if (read !== SIZE_MIB * MiB) throw new Error(`read ${read} bytes of ${SIZE_MIB * MiB}`);
  const hwm = memoryOf(pid).hwm;

  const mib = (kib: number) => kib / 1024;
  console.log(
    `castore serve (lmdb), ${SIZE_MIB} MiB blob: idle RssAnon ${mib(idle).toFixed(0)} MiB; ` +
      `peak during put ${mib(putPeak).toFixed(0)} MiB (${(SIZE_MIB / putSeconds).toFixed(0)} MiB/s), ` +
      `during read ${mib(readPeak).toFixed(0)} MiB (${(SIZE_MIB / readSeconds).toFixed(0)} MiB/s); VmHWM ${mib(hwm).toFixed(0)} MiB`,
  );
  const results: BenchResult[] = [
    ["put", putPeak],
    ["read", readPeak],
  ].map(([what, peak]) => ({
    name: `blobs: castore serve peak anonymous RSS during a ${SIZE_MIB} MiB ${what} vs idle`,
    value: mib(peak as number),
    unit: "MiB",
    baseline: mib(idle),
    ratio: (peak as number) / idle,
    notes: `lmdb store; RssAnon sampled after every 4 MiB piece; VmHWM (file pages included) ${mib(hwm).toFixed(0)} MiB`,
  }));
  recordBenchResults(results);
} finally {
  await client.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
