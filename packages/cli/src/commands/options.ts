import { InvalidArgumentError } from "commander";
import { Digest, type SizeCheck } from "@castore-ts/core";

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
  if (text !== "exact" && text !== "at-least")
    throw new InvalidArgumentError(`expected exact or at-least, got ${JSON.stringify(text)}`);
  return text;
}

export function parseDigest(text: string): Digest {
  return Digest.parse(text);
}
