/**
 * Opens stores by URL. Importing a backend package registers its schemes
 * with core's registry (spec §6); the CLI imports only the package a URL
 * names, when it is opened: loading all five took about 0.5 s of every
 * command's start (gRPC's and S3's clients most of it), a quarter of
 * `castore import` of 20 000 small files.
 */
import {
  type BlobService,
  type GarbageCollector,
  knownBlobSchemes,
  knownRefSchemes,
  openBlobService,
  openGarbageCollector,
  openRefService,
  openRefStore,
  openRefStoreWithProtect,
  type OpenedRefStore,
  type RefService,
  type RefStore,
  openDirectoryService,
  parseStoreUrl,
  schemeOf,
  type DirectoryService,
  type SizeCheck,
} from "@castore-ts/core";

/** Each backend package by the schemes it registers. */
const BACKENDS: { schemes: string[]; load: () => Promise<unknown> }[] = [
  { schemes: ["memory"], load: () => import("@castore-ts/backend-memory") },
  { schemes: ["lmdb"], load: () => import("@castore-ts/backend-lmdb") },
  { schemes: ["grpc+http", "grpc+https", "grpc+unix"], load: () => import("@castore-ts/backend-grpc") },
  { schemes: ["postgres", "postgresql"], load: () => import("@castore-ts/backend-postgres") },
  { schemes: ["s3"], load: () => import("@castore-ts/backend-s3") },
];
/** Schemes core registers itself; their URLs name other stores in their query. */
const NESTING_SCHEMES = new Set(["cache"]);

/** Every backend package, loaded: for --help's list of store URLs and the error naming them all. */
export async function loadAllBackends(): Promise<void> {
  await Promise.all(BACKENDS.map((b) => b.load()));
}

/**
 * Loads the backend packages a store URL needs: its scheme's, and those of
 * the store URLs nested in a cache:// URL's query. A URL that does not parse
 * or names no known scheme loads them all, so core's error lists every
 * scheme.
 */
export async function loadBackendsFor(text: string): Promise<void> {
  let url: URL;
  try {
    url = parseStoreUrl(text);
  } catch {
    return loadAllBackends();
  }
  const scheme = schemeOf(url);
  if (NESTING_SCHEMES.has(scheme)) {
    await Promise.all([...url.searchParams.values()].filter((v) => v.includes("://")).map(loadBackendsFor));
    return;
  }
  const backend = BACKENDS.find((b) => b.schemes.includes(scheme));
  await (backend ? backend.load() : loadAllBackends());
}

export const DEFAULT_STORE = "lmdb://./castore-data";

export async function openStore(url: string, opts: { sizeCheck?: SizeCheck } = {}): Promise<DirectoryService> {
  await loadBackendsFor(url);
  return openDirectoryService(url, opts);
}

/** The store's blobs; core's error when its scheme stores none. */
export async function openBlobs(url: string): Promise<BlobService> {
  await loadBackendsFor(url);
  return openBlobService(url);
}

/** The store's refs as a RefService; core's error when its scheme keeps none. */
export async function openRefs(url: string): Promise<RefService> {
  await loadBackendsFor(url);
  return openRefService(url);
}

/** The store's garbage collector; core's error when its scheme has none. */
export async function openCollector(url: string): Promise<GarbageCollector> {
  await loadBackendsFor(url);
  return openGarbageCollector(url);
}

/**
 * Whether the store lives in this process, on this machine (lmdb, memory):
 * a call costs microseconds, not a round trip, so commands may make many
 * (import's blob writes at once, ls's check of each file's contents).
 */
export function isLocalStore(url: string): boolean {
  return /^(lmdb|memory):/i.test(url);
}

/** The store's blobs, or undefined when its scheme stores no blobs (yet). */
export async function openBlobsIfAny(url: string): Promise<BlobService | undefined> {
  await loadBackendsFor(url);
  return knownBlobSchemes().includes(schemeOf(parseStoreUrl(url))) ? openBlobService(url) : undefined;
}

/** Whether the store's scheme keeps refs, its backend loaded. */
async function keepsRefs(url: string): Promise<boolean> {
  await loadBackendsFor(url);
  return knownRefSchemes().includes(schemeOf(parseStoreUrl(url)));
}

/** The store's ref store, or undefined when its scheme keeps no refs (yet). */
export async function openRefStoreIfAny(url: string): Promise<RefStore | undefined> {
  return (await keepsRefs(url)) ? openRefStore(url) : undefined;
}

/** The store's refs as a RefService, or undefined when its scheme keeps none. */
export async function openRefServiceIfAny(url: string): Promise<RefService | undefined> {
  return (await keepsRefs(url)) ? openRefService(url) : undefined;
}

/**
 * For a RefService over the store: its ref store with, on a store that
 * collects garbage, the `protect` that `set` must use (spec §10.2); undefined
 * when its scheme keeps no refs.
 */
export async function openRefsIfAny(url: string): Promise<OpenedRefStore | undefined> {
  return (await keepsRefs(url)) ? openRefStoreWithProtect(url) : undefined;
}
