/**
 * The clock of a store that lives in this process (memory, LMDB): wall time
 * in milliseconds, but strictly increasing from one call to the next. A
 * collection with no grace then treats everything written before it started
 * as old, even within the same millisecond.
 */
let last = 0;

export function monotonicNow(): number {
  const now = Date.now();
  last = now > last ? now : last + 0.001;
  return last;
}
