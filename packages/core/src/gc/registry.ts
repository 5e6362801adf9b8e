/**
 * Garbage collectors by store URL (the same schemes as directories, spec
 * §6). Backend packages register theirs when imported; core imports none.
 */
import { InvalidUrlError } from "../errors.js";
import { parseStoreUrl, redactUrl, schemeOf } from "../registry.js";
import type { GarbageCollector } from "./collector.js";

export type CollectorOpener = (url: URL) => Promise<GarbageCollector> | GarbageCollector;

const collectorSchemes = new Map<string, CollectorOpener>();

/** Registers a scheme's collector (without the colon, e.g. "lmdb"). Re-registering replaces. */
export function registerCollectorScheme(scheme: string, open: CollectorOpener): void {
  collectorSchemes.set(scheme.toLowerCase(), open);
}

/** The schemes whose stores can be collected. */
export function knownCollectorSchemes(): string[] {
  return [...collectorSchemes.keys()].sort();
}

/** Opens the garbage collector of the store a URL names. */
export async function openGarbageCollector(text: string): Promise<GarbageCollector> {
  const url = parseStoreUrl(text);
  const scheme = schemeOf(url);
  const open = collectorSchemes.get(scheme);
  if (!open) {
    const known = knownCollectorSchemes();
    throw new InvalidUrlError(
      `no garbage collector for the URL scheme "${scheme}:" in ${JSON.stringify(redactUrl(text))}; ` +
        (known.length ? `collectable schemes: ${known.map((s) => `${s}:`).join(", ")}` : "no collector is registered"),
    );
  }
  return open(url);
}
