/**
 * Importing /usr/share reads and hashes every file (530 MiB here): 25 s with
 * a warm page cache, over two minutes with a cold one or a busy machine, for
 * a benchmark that only needs the directories. So the imported directories
 * are kept in a cache file, reused while the tree's listing is unchanged:
 * the path, mode, size and mtime of every entry, walked with lstat (about
 * 1.5 s for /usr/share), hashed. Loaded directories are re-hashed against
 * their digests; anything amiss means a fresh import.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Digest, decodeDirectory, directoryDigest, encodeDirectory } from "@castore-ts/core";
import { type BenchTree, importedTree } from "./trees.js";

interface CacheFile {
  fingerprint: string;
  maxDirectories: number;
  key: string;
  description: string;
  importedAt: string;
  root: string;
  /** Canonical bytes, base64, leaves to root. */
  directories: string[];
}

/** SHA-256 over every entry's relative path, mode, size and mtime, in sorted order. */
export async function listingFingerprint(root: string): Promise<string> {
  const hash = createHash("sha256");
  const rootBuffer = Buffer.from(root);
  async function walk(dir: Buffer): Promise<void> {
    const names = (await readdir(dir, { encoding: "buffer" })).sort(Buffer.compare);
    for (const name of names) {
      const path = Buffer.concat([dir, Buffer.from("/"), name]);
      const st = await lstat(path);
      hash.update(path.subarray(rootBuffer.length));
      hash.update(`\0${st.mode}\0${st.size}\0${st.mtimeMs}\n`);
      if (st.isDirectory()) await walk(path);
    }
  }
  await walk(rootBuffer);
  return hash.digest("hex");
}

function load(file: string, fingerprint: string, maxDirectories: number): BenchTree | undefined {
  let cached: CacheFile;
  try {
    cached = JSON.parse(readFileSync(file, "utf8")) as CacheFile;
  } catch {
    return undefined;
  }
  if (cached.fingerprint !== fingerprint || cached.maxDirectories !== maxDirectories) return undefined;
  try {
    const directories = cached.directories.map((b64) => decodeDirectory(Buffer.from(b64, "base64")));
    const root = Digest.parse(cached.root);
    if (!directoryDigest(directories[directories.length - 1]).equals(root)) return undefined;
    const encodedBytes = directories.reduce((n, d) => n + encodeDirectory(d).length, 0);
    return {
      key: cached.key,
      description: `${cached.description}; reused from ${cached.importedAt}, the tree's listing unchanged`,
      directories,
      root,
      unit: "directories/s",
      units: directories.length,
      encodedBytes,
    };
  } catch {
    return undefined;
  }
}

/** `importedTree(path, maxDirectories)`, from the cache in `cacheDir` while `path`'s listing is unchanged. */
export async function cachedImportedTree(path: string, maxDirectories: number, cacheDir: string): Promise<BenchTree> {
  let fingerprint: string;
  try {
    fingerprint = await listingFingerprint(path);
  } catch {
    return importedTree(path, maxDirectories); // an unreadable corner: no cache, importTree says what is wrong
  }
  const file = join(cacheDir, `imported-${createHash("sha256").update(path).digest("hex").slice(0, 16)}.json`);
  const hit = load(file, fingerprint, maxDirectories);
  if (hit) return hit;
  const tree = await importedTree(path, maxDirectories);
  const entry: CacheFile = {
    fingerprint,
    maxDirectories,
    key: tree.key,
    description: tree.description,
    importedAt: new Date().toISOString().slice(0, 10),
    root: tree.root.hex,
    directories: tree.directories.map((d) => Buffer.from(encodeDirectory(d)).toString("base64")),
  };
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(entry));
  renameSync(`${file}.tmp`, file);
  return tree;
}
