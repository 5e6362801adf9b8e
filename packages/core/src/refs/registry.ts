/**
 * Ref stores by URL: the same schemes as directories and blobs (spec §6), so
 * that one `--store URL` gives every layer. Backend packages register a
 * scheme's RefStore when imported; core imports no backend.
 */
import { openBlobService, knownBlobSchemes } from "../blob/registry.js";
import { InvalidUrlError } from "../errors.js";
import { openDirectoryService, parseStoreUrl, redactUrl, schemeOf } from "../registry.js";
import { RefService, type RefStore } from "./service.js";

export type RefStoreOpener = (url: URL) => Promise<RefStore> | RefStore;

const refSchemes = new Map<string, RefStoreOpener>();

/** Registers a scheme's ref store (without the colon, e.g. "lmdb"). Re-registering replaces. */
export function registerRefStoreScheme(scheme: string, open: RefStoreOpener): void {
  refSchemes.set(scheme.toLowerCase(), open);
}

/** The schemes that can store refs. */
export function knownRefSchemes(): string[] {
  return [...refSchemes.keys()].sort();
}

/** Opens the RefStore a store URL names (no closure checks: see openRefService). */
export async function openRefStore(text: string): Promise<RefStore> {
  const url = parseStoreUrl(text);
  const scheme = schemeOf(url);
  const open = refSchemes.get(scheme);
  if (!open) {
    const known = knownRefSchemes();
    throw new InvalidUrlError(
      `no ref store for the URL scheme "${scheme}:" in ${JSON.stringify(redactUrl(text))}; ` +
        (known.length ? `schemes with refs: ${known.map((s) => `${s}:`).join(", ")}` : "no ref backend is registered"),
    );
  }
  return open(url);
}

/**
 * The refs of the store a URL names, with the same store's directories and
 * blobs opened beside them for the closure check of `set`; close() closes all
 * three. (A `memory://` URL opens fresh, empty stores each time: its refs can
 * only name trees uploaded through this service's own `directories`.)
 */
export async function openRefService(text: string): Promise<RefService> {
  const store = await openRefStore(text);
  const directories = await openDirectoryService(text);
  const scheme = schemeOf(parseStoreUrl(text));
  const blobs = knownBlobSchemes().includes(scheme) ? await openBlobService(text) : undefined;
  return new RefService(store, directories, blobs, { closeAll: true });
}
