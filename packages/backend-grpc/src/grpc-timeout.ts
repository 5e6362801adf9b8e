/**
 * The `grpc-timeout` request header (PROTOCOL-HTTP2.md: at most 8 ASCII
 * digits and a unit, H M S m u n) as a delay a Node timer can take.
 *
 * Clients send fractions of a millisecond routinely: grpc-go encodes a
 * deadline in nanoseconds below 0.1 s and in microseconds below 100 s
 * (`9999876u`), and up to 99 999 999 hours. Node's timers take whole
 * milliseconds up to 2³¹−1 (about 24.8 days) and fire after 1 ms for a
 * longer delay, and AbortSignal.timeout() throws for a fraction or for more
 * than 2³²−1 ms. So the delay is rounded up to whole milliseconds (a
 * deadline is never cut short), and one beyond what a timer can wait is no
 * deadline for us: the call would have to outlive 24.8 days first.
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** The longest delay Node's setTimeout honours (2³¹−1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Milliseconds per unit, and units per millisecond for the finer ones (dividing whole numbers rounds exactly: 3000u is 3 ms, not 3.0000000000000004). */
const MS_PER_UNIT: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1 };
const UNITS_PER_MS: Record<string, number> = { u: 1000, n: 1_000_000 };

/**
 * `timeoutMs`: whole milliseconds, 0 to MAX_TIMER_MS; undefined when the
 * header is absent or asks for longer than a timer can wait. `error`: the
 * header is malformed.
 */
export interface GrpcTimeout {
  timeoutMs?: number;
  error?: ConnectError;
}

export function parseGrpcTimeout(value: string | null | undefined): GrpcTimeout {
  if (value === null || value === undefined) return {};
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) {
    // INTERNAL, as grpc-go ("malformed grpc-timeout") and grpc-js answer it;
    // the value is shown shortened, a header may be long.
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return {
      error: new ConnectError(
        `malformed grpc-timeout ${JSON.stringify(shown)}: expected 1 to 8 digits and a unit (H, M, S, m, u or n)`,
        Code.Internal,
      ),
    };
  }
  // Exact for every unit (99 999 999 × 3 600 000 < 2⁵³); a fraction of a
  // millisecond rounds up, so a deadline is never cut short.
  const n = Number(m[1]);
  const unit = m[2];
  const ms = unit in MS_PER_UNIT ? n * MS_PER_UNIT[unit] : Math.ceil(n / UNITS_PER_MS[unit]);
  return ms > MAX_TIMER_MS ? {} : { timeoutMs: ms };
}
