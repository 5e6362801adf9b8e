import { InvalidArgumentError } from "commander";
import { Digest, SIZE_CHECKS, type SizeCheck } from "@castore-ts/core";

export function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new InvalidArgumentError(`expected a positive integer, got ${JSON.stringify(text)}`);
  return n;
}

export function nonNegativeInt(text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError(`expected a non-negative integer, got ${JSON.stringify(text)}`);
  return n;
}

export function parseSizeCheck(text: string): SizeCheck {
  if (!(SIZE_CHECKS as readonly string[]).includes(text))
    throw new InvalidArgumentError(`expected ${SIZE_CHECKS.join(" or ")}, got ${JSON.stringify(text)}`);
  return text as SizeCheck;
}

/** The help of every --size-check option: one wording for serve, verify and conformance (spec §1.1). */
export const SIZE_CHECK_HELP =
  "how a DirectoryNode's declared size is checked against its child, whose n entries declare sizes summing to s: " +
  "exact (only the canonical n + s, which castore always writes), or snix-compat " +
  "(also sizes up to 2·n + s, as older tvix/snix wrote and snix still accepts)";

export function parseDigest(text: string): Digest {
  return Digest.parse(text);
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration: `0`, or a number with a unit ms, s, m, h or d (`90s`, `30m`, `1.5h`, `7d`), in milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (text.trim() === "0") return 0;
  const ms = m ? Number(m[1]) * DURATION_UNITS_MS[m[2]] : Number.NaN;
  if (!Number.isFinite(ms))
    throw new InvalidArgumentError(
      `expected a duration: 0, or a number with a unit ms, s, m, h or d (e.g. 30m, 1h, 7d), got ${JSON.stringify(text)}`,
    );
  return ms;
}
