/**
 * The declared size of a DirectoryNode (spec §1.1): what is canonical, what
 * snix still accepts from older writers, and how each side of the wire checks
 * it. One rule, used by uploads (ClosureValidator), reads (RootToLeavesChecker,
 * getRecursive) and `castore verify`.
 *
 * For a directory X with n(X) entries (directories, files and symlinks) whose
 * DirectoryNodes declare sizes summing to s(X):
 * - canonical size: n(X) + s(X), what castore writes;
 * - legacy maximum: 2·n(X) + s(X), what older tvix/snix writers produced at
 *   most. snix accepts `size ..= size_max` (its order validators, feature
 *   `compat-accept-bigger-sizes`), both computed from X as received, so s(X)
 *   uses the sizes X itself declares, legacy or not.
 */
import { ValidationError } from "./errors.js";
import type { Directory } from "./model.js";

/**
 * How a declared DirectoryNode size is checked against the child it refers to:
 * "exact" accepts only the canonical size; "snix-compat" accepts the range
 * canonical ..= legacy maximum, as snix does.
 */
export type SizeCheck = "exact" | "snix-compat";

/** The modes, in the order help texts list them. */
export const SIZE_CHECKS: readonly SizeCheck[] = ["exact", "snix-compat"];

/** What a directory's parent may declare for it: `canonical` exactly, or up to `legacyMax` under snix-compat. */
export interface SizeRange {
  readonly canonical: bigint;
  readonly legacyMax: bigint;
}

/** The accepted sizes for a reference to `directory` (its own declared child sizes count as given). */
export function sizeRangeOf(directory: Directory): SizeRange {
  const entries = BigInt(directory.directories.length + directory.files.length + directory.symlinks.length);
  return sizeRangeFrom(canonicalSizeOf(directory), entries);
}

/** The range from a canonical size already computed (validateDirectorySize) and the entry count. */
export function sizeRangeFrom(canonical: bigint, entries: bigint | number): SizeRange {
  return { canonical, legacyMax: canonical + BigInt(entries) };
}

function canonicalSizeOf(d: Directory): bigint {
  let size = BigInt(d.files.length + d.symlinks.length + d.directories.length);
  for (const child of d.directories) size += child.size;
  return size;
}

/**
 * Where a declared size falls: the canonical size, a legacy size (above it,
 * at most the legacy maximum), or out of range on either side.
 */
export type DeclaredSizeVerdict = "canonical" | "legacy" | "too-small" | "too-large";

export function classifyDeclaredSize(declared: bigint, range: SizeRange): DeclaredSizeVerdict {
  if (declared === range.canonical) return "canonical";
  if (declared < range.canonical) return "too-small";
  return declared <= range.legacyMax ? "legacy" : "too-large";
}

/** Whether `mode` accepts a declared size of this verdict. */
export function sizeVerdictAccepted(verdict: DeclaredSizeVerdict, mode: SizeCheck): boolean {
  return verdict === "canonical" || (verdict === "legacy" && mode === "snix-compat");
}

/** Whether `mode` accepts `declared` for a directory with this range. */
export function declaredSizeAccepted(declared: bigint, range: SizeRange, mode: SizeCheck): boolean {
  return sizeVerdictAccepted(classifyDeclaredSize(declared, range), mode);
}

/** What `mode` accepts, for messages: "its size is 4" or "its size is 4 (snix-compat accepts 4..7)". */
export function describeAcceptedSizes(range: SizeRange, mode: SizeCheck): string {
  if (mode === "exact" || range.legacyMax === range.canonical) return `its size is ${range.canonical}`;
  return `its size is ${range.canonical} (snix-compat accepts ${range.canonical}..${range.legacyMax})`;
}

/** Parses a mode name; anything else is a ValidationError naming the modes. */
export function parseSizeCheck(text: string): SizeCheck {
  if ((SIZE_CHECKS as readonly string[]).includes(text)) return text as SizeCheck;
  throw new ValidationError(`invalid size check ${JSON.stringify(text)}: expected ${SIZE_CHECKS.join(" or ")}`);
}
