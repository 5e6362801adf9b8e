/**
 * `/raw/<root>/<path…>` and `/blob/<digest>`: a file's bytes over plain HTTP,
 * for downloads, `curl` and the app's previews. Content-Length is the blob's
 * size, Content-Type is guessed from the name, Content-Disposition names the
 * file, the ETag is the blob's digest (bytes never change under a digest), and
 * a single `Range` is answered 206 with only the chunks it overlaps read
 * (BlobService.read with offset and length; the chunked service fetches them
 * in parallel). A path that leads nowhere is 404 with one line saying why.
 */
import type * as http from "node:http";
import {
  type BlobService,
  Digest,
  type DirectoryService,
  isCastoreError,
  makeDirectoryNode,
  type Node,
  type RefService,
  traverseTo,
} from "@castore-ts/core";
import { answerRange } from "./range.js";
import { OCTET_STREAM, contentDisposition, contentTypeOf } from "./content-type.js";
import { parseRootedPath } from "./paths.js";

export interface RawFilesOptions {
  directories: DirectoryService;
  blobs?: BlobService;
  refs?: RefService;
  /** Where read failures (not 404s) are reported. */
  onError?: (error: unknown, url: string) => void;
}

/** A one-line plain-text answer. */
export function sendText(
  res: http.ServerResponse,
  status: number,
  line: string,
  headers: http.OutgoingHttpHeaders = {},
): void {
  const body = `${line.replace(/[\r\n]+/g, " ")}\n`;
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(body);
}

class HttpAnswer extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const SLASH = new Uint8Array([0x2f]);

function joinNames(names: Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  names.forEach((n, i) => parts.push(...(i ? [SLASH, n] : [n])));
  return Buffer.concat(parts);
}

/** Handles a GET or HEAD of /raw/… or /blob/…; resolves when the answer is sent. */
export function createRawFilesHandler(opts: RawFilesOptions) {
  const { directories, blobs, refs } = opts;

  async function resolveRawPath(rest: string, signal: AbortSignal): Promise<{ digest: Digest; name: Uint8Array }> {
    const path = parseRootedPath(rest);
    let root: Digest;
    if (path.root.digest) root = path.root.digest;
    else {
      if (!refs) throw new HttpAnswer(404, `no ref ${path.root.ref}: this store keeps no refs`);
      const held = await refs.get(path.root.ref, { signal });
      if (!held) throw new HttpAnswer(404, `no ref ${path.root.ref}`);
      root = held;
    }
    const shown = `${path.rootText}/${new TextDecoder().decode(joinNames(path.names))}`;
    if (path.names.length === 0) throw new HttpAnswer(404, `${path.rootText} is a directory, not a file`);
    if (!(await directories.get(root, { signal }))) throw new HttpAnswer(404, `directory ${root} not found`);
    const start: Node = { kind: "directory", node: makeDirectoryNode("", root, 0) };
    const node = await traverseTo(directories, start, joinNames(path.names), { signal });
    if (!node) throw new HttpAnswer(404, `${shown}: no such file or directory`);
    if (node.kind === "directory") throw new HttpAnswer(404, `${shown} is a directory, not a file`);
    if (node.kind === "symlink") {
      throw new HttpAnswer(404, `${shown} is a symlink (to ${new TextDecoder().decode(node.node.target)}), not a file`);
    }
    return { digest: Digest.fromBytes(node.node.digest), name: path.names[path.names.length - 1] };
  }

  return async function handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    pathname: string,
    query: URLSearchParams,
  ): Promise<void> {
    const signal = abortOnClose(req, res);
    try {
      if (!blobs) throw new HttpAnswer(404, "this store keeps no blobs");
      let digest: Digest;
      let name: Uint8Array;
      let type: string;
      if (pathname.startsWith("/blob/")) {
        const text = pathname.slice("/blob/".length);
        try {
          digest = Digest.parse(text);
        } catch (e) {
          throw new HttpAnswer(400, (e as Error).message);
        }
        name = new TextEncoder().encode(digest.hex);
        type = OCTET_STREAM;
      } else {
        ({ digest, name } = await resolveRawPath(pathname.slice("/raw/".length), signal));
        type = contentTypeOf(name);
      }
      const stat = await blobs.stat(digest, { signal });
      if (!stat) throw new HttpAnswer(404, `blob ${digest} not found`);
      const etag = `"${digest.hex}"`;
      const headers: http.OutgoingHttpHeaders = {
        "content-type": type,
        "content-disposition": contentDisposition(query.has("download") ? "attachment" : "inline", name),
        etag,
        "accept-ranges": "bytes",
        // Bytes under a digest never change; the path to them may (a ref moves), so paths are revalidated.
        "cache-control": pathname.startsWith("/blob/") ? "public, max-age=31536000, immutable" : "no-cache",
        "x-content-type-options": "nosniff",
        // A stored HTML or SVG file opened here must not run as this origin (where the app keeps its token).
        "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; sandbox",
      };
      if (req.headers["if-none-match"]?.split(/\s*,\s*/).includes(etag)) {
        res.writeHead(304, headers).end();
        return;
      }
      // If-Range with another validator: the client's piece is stale, send it all.
      const ifRange = req.headers["if-range"];
      const range =
        ifRange !== undefined && ifRange !== etag
          ? { kind: "whole" as const }
          : answerRange(req.headers.range, stat.size);
      if (range.kind === "unsatisfiable") {
        sendText(res, 416, `range ${req.headers.range} is outside the ${stat.size} bytes of this file`, {
          "content-range": `bytes */${stat.size}`,
          etag,
        });
        return;
      }
      const start = range.kind === "partial" ? range.start : 0;
      const length = range.kind === "partial" ? range.end - range.start + 1 : stat.size;
      if (range.kind === "partial") {
        headers["content-range"] = `bytes ${range.start}-${range.end}/${stat.size}`;
      }
      headers["content-length"] = length;
      if (req.method === "HEAD" || length === 0) {
        res.writeHead(range.kind === "partial" ? 206 : 200, headers).end();
        return;
      }
      const bytes = await blobs.read(digest, { offset: start, length, signal });
      if (!bytes) throw new HttpAnswer(404, `blob ${digest} not found`);
      res.writeHead(range.kind === "partial" ? 206 : 200, headers);
      await pipeBytes(bytes, res, signal);
    } catch (e) {
      if (res.headersSent) {
        // Mid-body: the only honest answer left is a cut connection (Content-Length tells the client).
        if (!signal.aborted) opts.onError?.(e, req.url ?? "");
        res.destroy();
        return;
      }
      if (e instanceof HttpAnswer) sendText(res, e.status, e.message);
      else if (isCastoreError(e) && (e.code === "VALIDATION" || e.code === "INVALID_DIGEST"))
        sendText(res, 400, e.message);
      else if (isCastoreError(e) && e.code === "NOT_FOUND") sendText(res, 404, e.message);
      else {
        opts.onError?.(e, req.url ?? "");
        sendText(res, 500, `reading failed: ${(e as Error)?.message ?? String(e)}`);
      }
    }
  };
}

/** Aborted when the client goes away before the answer is complete. */
function abortOnClose(req: http.IncomingMessage, res: http.ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort(new Error("the client went away"));
  });
  req.once("aborted", () => controller.abort(new Error("the client went away")));
  return controller.signal;
}

/** Writes the stream to the response, waiting for 'drain' so a slow client holds the read. */
async function pipeBytes(
  bytes: AsyncIterable<Uint8Array>,
  res: http.ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  for await (const piece of bytes) {
    if (signal.aborted) return;
    if (!res.write(piece)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off("drain", done);
          res.off("close", done);
          resolve();
        };
        res.on("drain", done);
        res.on("close", done);
      });
    }
  }
  res.end();
}
