/**
 * What the benchmarks time, shared so every "vs bare encode+BLAKE3" ratio
 * compares against the same loop measured the same way.
 */
import { loadavg } from "node:os";
import { type Directory, blake3, encodeDirectory } from "@castore-ts/core";

/** The 1, 5 and 15 minute load averages, as every result's notes give them (e.g. "2.4 2.2 2.2"). */
export function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");
}

/** Wall-clock seconds of `fn`, after a full collection when `gc` is given (so earlier garbage is not billed to it). */
export async function timeSeconds(fn: () => Promise<unknown> | unknown, gc?: () => void): Promise<number> {
  gc?.();
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

/**
 * The baseline every ingest is measured against: encode each directory and
 * BLAKE3 it, nothing else. Returns a checksum so the work cannot be optimised away.
 */
export function encodeAndHashLoop(directories: Directory[]): number {
  let checksum = 0;
  for (const d of directories) checksum ^= blake3(encodeDirectory(d))[0];
  return checksum;
}
