/**
 * verify --repair: the directories verify found corrupt (stored bytes that do
 * not hash to their key, or do not decode as a valid directory) are fetched
 * from another store and written over the damaged bytes with
 * DirectoryService.repair. The other store's get re-hashes and re-validates
 * what it returns, and repair checks it again before writing: nothing that
 * fails a read's checks is ever written.
 */
import type { Digest, Directory, DirectoryService } from "@castore-ts/core";

export interface RepairFailure {
  digest: string;
  message: string;
}

export interface RepairOptions {
  /** Directories fetched and written per repair call. */
  batchSize?: number;
  onRepaired?(digest: string): void;
  onFailed?(failure: RepairFailure): void;
  signal?: AbortSignal;
}

/** Why a store has no repair: say what to do instead. */
export function cannotRepair(service: DirectoryService): string | undefined {
  return service.repair ? undefined : "this store cannot replace stored bytes (its backend has no repair)";
}

/** Repairs `digests` in `service` from `from`; resolves to how many were repaired. */
export async function repairFrom(
  service: DirectoryService,
  from: DirectoryService,
  digests: Digest[],
  opts: RepairOptions = {},
): Promise<number> {
  const repair = service.repair?.bind(service);
  if (!repair) throw new Error(cannotRepair(service));
  const batchSize = opts.batchSize ?? 64;
  const fail = (digest: Digest, message: string) => opts.onFailed?.({ digest: digest.hex, message });
  let repaired = 0;
  for (let start = 0; start < digests.length; start += batchSize) {
    const batch = digests.slice(start, start + batchSize);
    const found: { digest: Digest; directory: Directory }[] = [];
    for (const digest of batch) {
      try {
        const directory = await from.get(digest, { signal: opts.signal });
        if (directory) found.push({ digest, directory });
        else fail(digest, "not stored in the store to repair from");
      } catch (e) {
        fail(digest, `cannot read it from the store to repair from: ${(e as Error).message}`);
      }
    }
    if (found.length === 0) continue;
    const replaced = new Set(
      (
        await repair(
          found.map((f) => f.directory),
          { signal: opts.signal },
        )
      ).map((d) => d.hex),
    );
    for (const { digest } of found) {
      if (replaced.has(digest.hex)) {
        repaired++;
        opts.onRepaired?.(digest.hex);
      } else fail(digest, "no longer stored, or not replaced by the store");
    }
  }
  return repaired;
}
