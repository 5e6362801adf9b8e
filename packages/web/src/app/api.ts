/**
 * The app's calls to the server: connect-web (Connect protocol) clients made
 * from the same generated service descriptors the server registers, with the
 * bearer token from session storage when there is one.
 */
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { BlobService, type Directory, DirectoryService, RefService } from "@castore-ts/proto";
import { bytesOfHex, hexOf } from "./dom.js";
import { verifiedBlob, verifiedDirectory } from "./verify.js";

export const TOKEN_KEY = "castore.token";

export function savedToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

const withToken: Interceptor = (next) => (req) => {
  const token = savedToken();
  if (token) req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

// Binary protobuf, not JSON: a 50 000-entry directory is a few MB either way, but binary parses far faster.
const transport = createConnectTransport({
  baseUrl: location.origin,
  useBinaryFormat: true,
  interceptors: [withToken],
});
const directories = createClient(DirectoryService, transport);
const blobs = createClient(BlobService, transport);
const refs = createClient(RefService, transport);

/** One directory, verified against its digest (hex). */
export async function getDirectory(digestHex: string): Promise<Directory> {
  let got: Directory | undefined;
  for await (const d of directories.get({ byWhat: { case: "digest", value: bytesOfHex(digestHex) } })) {
    got ??= d;
  }
  if (!got) throw new Error(`directory ${digestHex} not found`);
  return verifiedDirectory(got, digestHex);
}

/** The digest (hex) a ref holds. */
export async function getRef(name: string): Promise<string> {
  return hexOf((await refs.get({ name })).digest);
}

export async function listRefs(): Promise<{ name: string; digest: string }[]> {
  const out = [];
  for await (const r of refs.list({ prefix: "" })) out.push({ name: r.name, digest: hexOf(r.digest) });
  return out;
}

/** A whole blob, verified against its digest (hex). */
export async function readBlob(digestHex: string): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of blobs.read({ digest: bytesOfHex(digestHex) })) {
    parts.push(chunk.data);
    size += chunk.data.length;
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  return verifiedBlob(bytes, digestHex);
}
