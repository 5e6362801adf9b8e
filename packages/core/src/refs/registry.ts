/**
 * Ref stores by URL: the same schemes as directories and blobs (spec §6), so
 * that one `--store URL` gives every layer. Backend packages register a
 * scheme's RefStore when imported; core imports no backend.
 */
import { openBlobService, knownBlobSchemes } from "../blob/registry.js";
import { InvalidUrlError } from "../errors.js";
import { openDirectoryService, parseStoreUrl, redactUrl, schemeOf } from "../registry.js";
import { RefService, type RefServiceOptions, type RefStore } from "./service.js";

/**
 * What a RefService over a scheme's store needs: the RefStore and, on a
 * store that collects garbage, what `set` does instead of the plain closure
 * check (RefServiceOptions.protect, spec §10.2). Closing the store releases
 * whatever `protect` reads.
 */
export interface OpenedRefStore {
  store: RefStore;
  protect?: RefServiceOptions["protect"];
}

/** Opens a scheme's refs: a bare RefStore, or one with its `protect` (a store that collects garbage). */
export type RefStoreOpener = (url: URL) => Promise<RefStore | OpenedRefStore> | RefStore | OpenedRefStore;

const refSchemes = new Map<string, RefStoreOpener>();

/**
 * Registers a scheme's ref store (without the colon, e.g. "lmdb"); a store
 * that collects garbage registers it with its `protect`. Re-registering replaces.
 */
export function registerRefStoreScheme(scheme: string, open: RefStoreOpener): void {
  refSchemes.set(scheme.toLowerCase(), open);
}

/** The schemes that can store refs. */
export function knownRefSchemes(): string[] {
  return [...refSchemes.keys()].sort();
}

/** Opens the RefStore a store URL names (no closure checks: see openRefService). */
export async function openRefStore(text: string): Promise<RefStore> {
  return (await openRefStoreWithProtect(text)).store;
}

/**
 * Opens the RefStore a store URL names with the scheme's `protect`, if any:
 * what `new RefService(store, directories, blobs, { protect })` needs when
 * the caller opens the directories and blobs itself.
 */
export async function openRefStoreWithProtect(text: string): Promise<OpenedRefStore> {
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
  const opened = await open(url);
  return "store" in opened ? opened : { store: opened };
}

/**
 * The refs of the store a URL names, with the same store's directories and
 * blobs opened beside them for the closure check of `set` (or the scheme's
 * `protect`, on a store that collects garbage); close() closes all three.
 * (A `memory://` URL opens fresh, empty stores each time: its refs can only
 * name trees uploaded through this service's own `directories`.)
 */
export async function openRefService(text: string): Promise<RefService> {
  const { store, protect } = await openRefStoreWithProtect(text);
  const directories = await openDirectoryService(text);
  const scheme = schemeOf(parseStoreUrl(text));
  const blobs = knownBlobSchemes().includes(scheme) ? await openBlobService(text) : undefined;
  return new RefService(store, directories, blobs, { closeAll: true, protect });
}
