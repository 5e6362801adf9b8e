/**
 * Progress for long work: a live bar on a terminal, a plain line every few
 * seconds otherwise (logs and CI stay readable). Always on stderr.
 */
import cliProgress from "cli-progress";

export interface ProgressReporter {
  update(counts: Record<string, number>): void;
  stop(): void;
}

function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/**
 * "3 files, 1.2 MiB hashed (4.0 MiB/s), 0 B uploaded": a count named "bytes"
 * or "bytes WHAT" is shown as a size (and WHAT); the first such, with its rate.
 */
function describe(counts: Record<string, number>, seconds: number): string {
  let rated = false;
  return Object.entries(counts)
    .map(([k, v]) => {
      if (k !== "bytes" && !k.startsWith("bytes ")) return `${v} ${k}`;
      const what = k === "bytes" ? "" : ` ${k.slice("bytes ".length)}`;
      const rate = rated ? "" : ` (${humanBytes(v / Math.max(seconds, 0.001))}/s)`;
      rated = true;
      return `${humanBytes(v)}${what}${rate}`;
    })
    .join(", ");
}

export { humanBytes };

/**
 * Seconds between progress lines when stderr is not a terminal: 2, or
 * CASTORE_PROGRESS_INTERVAL_MS (0: a line at every update, as tests that
 * wait for a point in a long run use).
 */
function lineIntervalSeconds(): number {
  const ms = Number(process.env.CASTORE_PROGRESS_INTERVAL_MS ?? 2000);
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : 2;
}

export function createProgress(label: string, opts: { enabled?: boolean } = {}): ProgressReporter {
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  if (opts.enabled === false) return { update() {}, stop() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} {spinner} {text}`, stream: process.stderr, hideCursor: true, clearOnComplete: true, fps: 8 },
      cliProgress.Presets.shades_classic,
    );
    const frames = "|/-\\";
    let frame = 0;
    bar.start(1, 0, { text: "", spinner: frames[0] });
    return {
      update(counts) {
        bar.update(0, { text: describe(counts, elapsed()), spinner: frames[frame++ % frames.length] });
      },
      stop() {
        bar.stop();
      },
    };
  }
  let last = 0;
  let stopped = false;
  let latest: Record<string, number> = {};
  const every = lineIntervalSeconds();
  return {
    update(counts) {
      latest = counts;
      if (elapsed() - last >= every) {
        last = elapsed();
        process.stderr.write(`${label}: ${describe(counts, elapsed())}\n`);
      }
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (Object.keys(latest).length)
        process.stderr.write(`${label}: ${describe(latest, elapsed())} in ${elapsed().toFixed(1)} s\n`);
    },
  };
}
