/**
 * Blob services by URL: the same schemes as directories (spec §6), so that
 * one `--store URL` gives both layers. Backend packages register both when
 * imported; core imports no backend.
 */
import { InvalidUrlError } from "../errors.js";
import { parseStoreUrl, redactUrl, schemeOf } from "../registry.js";
import type { BlobService } from "./service.js";

export type BlobServiceOpener = (url: URL) => Promise<BlobService> | BlobService;

const blobSchemes = new Map<string, BlobServiceOpener>();

/** Registers a scheme's blob service (without the colon, e.g. "memory"). Re-registering replaces. */
export function registerBlobServiceScheme(scheme: string, open: BlobServiceOpener): void {
  blobSchemes.set(scheme.toLowerCase(), open);
}

/** The schemes that can store blobs. */
export function knownBlobSchemes(): string[] {
  return [...blobSchemes.keys()].sort();
}

/** Opens the BlobService a store URL names. */
export async function openBlobService(text: string): Promise<BlobService> {
  const url = parseStoreUrl(text);
  const scheme = schemeOf(url);
  const open = blobSchemes.get(scheme);
  if (!open) {
    const known = knownBlobSchemes();
    throw new InvalidUrlError(
      `no blob store for the URL scheme "${scheme}:" in ${JSON.stringify(redactUrl(text))}; ` +
        (known.length
          ? `schemes with blobs: ${known.map((s) => `${s}:`).join(", ")}`
          : "no blob backend is registered"),
    );
  }
  return open(url);
}
