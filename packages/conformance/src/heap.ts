/**
 * Rough memory measurement for the streaming scenario and the benchmarks:
 * force a full garbage collection, then read what is still held.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

let cached: (() => void) | null | undefined;

/**
 * A function that forces a full garbage collection: `globalThis.gc` when node
 * runs with --expose-gc, else one obtained by setting that flag at run time.
 * Undefined when neither works.
 */
export function gcFunction(): (() => void) | undefined {
  if (cached === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (typeof exposed === "function") cached = exposed;
    else {
      try {
        setFlagsFromString("--expose-gc");
        const gc: unknown = runInNewContext("gc");
        cached = typeof gc === "function" ? (gc as () => void) : null;
      } catch {
        cached = null;
      }
    }
  }
  return cached ?? undefined;
}

/**
 * Bytes still held after full collections (`passes` of them; a second one
 * also frees what the first one's weak callbacks released): the JS heap plus
 * buffers outside it (Uint8Array contents).
 */
export function retainedBytes(gc: () => void, passes = 2): number {
  for (let i = 0; i < passes; i++) gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

export function formatBytes(n: number): string {
  return `${(n / 2 ** 20).toFixed(1)} MiB`;
}
