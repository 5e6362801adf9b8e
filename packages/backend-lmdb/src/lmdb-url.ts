/**
 * The `lmdb:` store URL (spec §6): which directory holds the LMDB
 * environment, and the few engine options worth choosing per store.
 *
 *   lmdb:///abs/path          absolute
 *   lmdb://./relative         relative to the process's working directory
 *   lmdb://../relative        (the same, from the parent directory)
 *   lmdb:relative, lmdb:/abs  the short forms without "//"
 *
 * Query options: `mapSize` (initial map size in bytes, suffixes KiB/MiB/GiB/TiB
 * or K/M/G/T allowed; LMDB grows the map as needed) and `noSync` (true/false,
 * default false: every upload is flushed to disk before it is acknowledged).
 */
import { resolve } from "node:path";
import { InvalidUrlError, parseBooleanOption, readStoreUrl } from "@castore-ts/core";

export const LMDB_URL_EXAMPLE = "lmdb:///abs/path or lmdb://./relative";

export interface LmdbStoreOptions {
  /** Initial size of the memory map in bytes; LMDB grows it when it fills. Default: lmdb-js's (small, growing). */
  mapSize?: number;
  /**
   * Do not fsync commits. Faster, and a crashed *process* still loses
   * nothing it committed, but an OS crash or power loss can lose recent
   * uploads or corrupt the file. Default false (durable).
   */
  noSync?: boolean;
}

export interface LmdbUrl {
  /** Absolute path of the directory that holds data.mdb and lock.mdb. */
  path: string;
  options: LmdbStoreOptions;
}

const UNITS: Record<string, number> = {
  "": 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tib: 2 ** 40,
};

function invalid(url: string, why: string): InvalidUrlError {
  return new InvalidUrlError(`invalid lmdb store URL ${JSON.stringify(url)}: ${why}; expected ${LMDB_URL_EXAMPLE}`);
}

function parseSize(url: string, name: string, text: string): number {
  const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(text.trim());
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  const value = m && unit !== undefined ? Number(m[1]) * unit : NaN;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw invalid(url, `${name}=${JSON.stringify(text)} is not a positive size in bytes (e.g. 1073741824 or 1GiB)`);
  }
  return value;
}

/** Parses an `lmdb:` URL; relative paths resolve against `cwd` (default: the process's). */
export function parseLmdbUrl(input: URL | string, cwd: string = process.cwd()): LmdbUrl {
  const { url, text } = readStoreUrl(input, "lmdb:", invalid);
  if (url.username || url.password || url.port) throw invalid(text, "user, password and port have no meaning here");

  let pathname: string;
  try {
    pathname = decodeURIComponent(url.pathname);
  } catch {
    throw invalid(text, "the path is not valid percent-encoding");
  }
  if (pathname.includes("\0")) throw invalid(text, "the path contains a NUL byte");

  let path: string;
  if (url.host === "." || url.host === "..") {
    path = resolve(cwd, url.host + pathname);
  } else if (url.host === "") {
    if (pathname === "") throw invalid(text, "no path given");
    path = resolve(cwd, pathname); // absolute stays absolute; the short form "lmdb:rel" is relative
  } else {
    throw invalid(
      text,
      `"${url.host}" would be a host; write lmdb:///${url.host}${pathname} for an absolute path ` +
        `or lmdb://./${url.host}${pathname} for one relative to the working directory`,
    );
  }

  const options: LmdbStoreOptions = {};
  for (const [name, value] of url.searchParams) {
    switch (name) {
      case "mapSize":
        options.mapSize = parseSize(text, name, value);
        break;
      case "noSync":
        options.noSync = parseBooleanOption(name, value, (why) => invalid(text, why));
        break;
      default:
        throw invalid(text, `unknown option "${name}" (known: mapSize, noSync)`);
    }
  }
  return { path, options };
}
