/**
 * Waiting for an event in a test, instead of sleeping and hoping it happened.
 *
 * `waitFor` polls `cond` every few milliseconds until it holds. Its cap (60 s
 * by default) is not a performance assertion: it only turns a condition that
 * never holds (a hang) into a failure that names the condition, well before
 * the runner's own timeout would stop the whole file.
 */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string = String(cond),
  capMs = 60_000,
): Promise<void> {
  const started = Date.now();
  while (!(await cond())) {
    if (Date.now() - started > capMs) throw new Error(`still waiting after ${capMs} ms for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
