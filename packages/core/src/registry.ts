/**
 * Backend selection by URL (spec §6). Backend packages register their
 * schemes when imported; core imports no backend.
 */
import { InvalidUrlError } from "./errors.js";
import type { DirectoryService, SizeCheck } from "./service.js";

export interface OpenOptions {
  sizeCheck?: SizeCheck;
}

export type DirectoryServiceOpener = (url: URL, opts: OpenOptions) => Promise<DirectoryService> | DirectoryService;

interface Registration {
  open: DirectoryServiceOpener;
  /** One line for error messages and --help, e.g. "lmdb:///abs/path or lmdb://./relative". */
  example: string;
}

const schemes = new Map<string, Registration>();

/** Registers a scheme (without the colon, e.g. "memory", "grpc+http"). Re-registering replaces. */
export function registerDirectoryServiceScheme(scheme: string, example: string, open: DirectoryServiceOpener): void {
  schemes.set(scheme.toLowerCase(), { open, example });
}

/** The registered schemes and their URL examples. */
export function knownSchemes(): { scheme: string; example: string }[] {
  return [...schemes.entries()].map(([scheme, r]) => ({ scheme, example: r.example })).sort((a, b) => a.scheme.localeCompare(b.scheme));
}

function describeKnown(): string {
  const known = knownSchemes();
  if (known.length === 0) return "no backends are registered (import a backend package)";
  return `known: ${known.map((k) => k.example).join(", ")}`;
}

/**
 * Hides secrets in a store URL for messages and logs: the password, query
 * parameters named like secrets, and the same inside store URLs nested in
 * the query (cache://?near=…&far=…).
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password && u.search === "") return url;
    if (u.password) u.password = "***";
    for (const [key, value] of [...u.searchParams.entries()]) {
      if (/secret|password|token|key/i.test(key)) u.searchParams.set(key, "***");
      else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) u.searchParams.set(key, redactUrl(value));
    }
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@/]*@/, "//$1:***@");
  }
}

/** Parses a store URL, throwing InvalidUrlError that lists the known schemes. */
export function parseStoreUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidUrlError(`malformed store URL ${JSON.stringify(redactUrl(text))}; ${describeKnown()}`);
  }
  return url;
}

/** Opens the DirectoryService a URL names. */
export async function openDirectoryService(text: string, opts: OpenOptions = {}): Promise<DirectoryService> {
  const url = parseStoreUrl(text);
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  const registration = schemes.get(scheme);
  if (!registration) {
    throw new InvalidUrlError(`unknown store URL scheme "${scheme}:" in ${JSON.stringify(redactUrl(text))}; ${describeKnown()}`);
  }
  return registration.open(url, opts);
}
