/**
 * Backend selection by URL (spec §6). Backend packages register their
 * schemes when imported; core imports no backend.
 */
import { InvalidUrlError } from "./errors.js";
import type { DirectoryService } from "./service.js";
import type { SizeCheck } from "./size-check.js";

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
  return [...schemes.entries()]
    .map(([scheme, r]) => ({ scheme, example: r.example }))
    .sort((a, b) => a.scheme.localeCompare(b.scheme));
}

function describeKnown(): string {
  const known = knownSchemes();
  if (known.length === 0) return "no backends are registered (import a backend package)";
  return `known: ${known.map((k) => k.example).join(", ")}`;
}

/** Query parameters whose values are hidden: credentials by name. */
const SECRET_PARAMETER = /secret|password|token|key/i;
/** A value that is itself a store URL (cache://?near=…&far=…), redacted in turn. */
const NESTED_URL = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * Hides secrets in a store URL for messages and logs: the password, query
 * parameters named like secrets, and the same inside store URLs nested in
 * the query (cache://?near=…&far=…).
 *
 * Generated passwords hold reserved characters, and users paste them
 * unencoded: `postgres://alice:ab+c/d==@db/x` does not parse, and
 * `postgres://alice:p@ss#word@db/x` parses as password "p", host "ss" and
 * fragment "word@db/x". So wherever an `@` lies beyond the authority as
 * parsed, or the URL does not parse, everything between the scheme and the
 * last `@` is hidden, user name included.
 */
export function redactUrl(url: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url)?.[0] ?? "";
  const rest = url.slice(scheme.length);
  const lastAt = rest.lastIndexOf("@");
  const authorityEnd = rest.search(/[/?#]/);
  const userInfoAsParsed = lastAt < 0 || authorityEnd < 0 || lastAt < authorityEnd;
  let u: URL | undefined;
  try {
    u = new URL(url);
  } catch {
    // handled below
  }
  if (!u || !userInfoAsParsed) {
    return lastAt < 0
      ? redactSecretParametersText(url)
      : `${scheme}***@${redactSecretParametersText(rest.slice(lastAt + 1))}`;
  }
  if (!u.password && u.search === "") return url;
  if (u.password) u.password = "***";
  for (const [key, value] of [...u.searchParams.entries()]) {
    if (SECRET_PARAMETER.test(key)) u.searchParams.set(key, "***");
    else if (NESTED_URL.test(value)) u.searchParams.set(key, redactUrl(value));
  }
  return u.toString();
}

/** Hides the values of secret-named parameters in text that is not a parsed URL. */
function redactSecretParametersText(text: string): string {
  return text.replace(/([?&;][^=&#]*=)([^&#]*)/g, (all, name: string) =>
    SECRET_PARAMETER.test(name) ? `${name}***` : all,
  );
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

/** A store URL's scheme, lower case and without the colon ("lmdb", "grpc+http"): the key of every registry. */
export function schemeOf(url: URL): string {
  return url.protocol.slice(0, -1).toLowerCase();
}

/** Opens the DirectoryService a URL names. */
export async function openDirectoryService(text: string, opts: OpenOptions = {}): Promise<DirectoryService> {
  const url = parseStoreUrl(text);
  const scheme = schemeOf(url);
  const registration = schemes.get(scheme);
  if (!registration) {
    throw new InvalidUrlError(
      `unknown store URL scheme "${scheme}:" in ${JSON.stringify(redactUrl(text))}; ${describeKnown()}`,
    );
  }
  return registration.open(url, opts);
}
