/**
 * FaultProxy: a small HTTP proxy on loopback in front of the S3 test server,
 * for tests. It forwards requests unchanged (the Host header too, so request
 * signatures stay valid) and, per request, can instead answer 500 or 503,
 * drop the connection before or after forwarding, cut a response body short,
 * or trickle a body slowly. It counts requests, requests in flight and body
 * bytes sent, and can emulate `If-None-Match: *` on PUT (which s3rver ignores)
 * or refuse it with 501.
 */
import {
  type IncomingMessage,
  type Server,
  type ServerResponse,
  createServer,
  request as httpRequest,
} from "node:http";
import type { AddressInfo } from "node:net";

export type Fault =
  | { kind: "pass" }
  | { kind: "status"; status: 500 | 503 }
  /** Closes the client's connection without forwarding. */
  | { kind: "drop-before" }
  /** Forwards (the server acts on it), then closes the client's connection without an answer. */
  | { kind: "drop-after" }
  /** Never answers (the connection stays open and silent). */
  | { kind: "hang" }
  /** Forwards, sends the status and headers and `bytes` bytes of the body, then closes the connection. */
  | { kind: "cut-body"; bytes: number };

export interface ProxiedRequest {
  n: number;
  method: string;
  /** Path with query, e.g. /bucket/prefix/dirs/ab…?x-id=GetObject */
  url: string;
  headers: IncomingMessage["headers"];
}

export interface FaultProxyOptions {
  /** Decides each request's fate; default: pass everything. */
  policy?: (req: ProxiedRequest) => Fault;
  /** Answer PUTs carrying If-None-Match: * with 412 when the key exists (checked with `exists`). */
  emulateIfNoneMatch?: (bucketAndKey: string) => Promise<boolean>;
  /** Answer PUTs carrying If-None-Match with 501 Not Implemented. */
  refuseIfNoneMatch?: boolean;
  /** Send response bodies in pieces of this many bytes with `trickleDelayMs` between them. */
  trickleBytes?: number;
  trickleDelayMs?: number;
  /** Forward GETs without their Range header, as a server that ignores Range would answer (whole object, 200). */
  ignoreRange?: boolean;
}

const ERROR_CODES = {
  500: "InternalError",
  501: "NotImplemented",
  503: "SlowDown",
  412: "PreconditionFailed",
} as const;

function s3Error(res: ServerResponse, status: 500 | 501 | 503 | 412, method: string): void {
  const code = ERROR_CODES[status];
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>injected by FaultProxy</Message></Error>`;
  res.writeHead(status, {
    "content-type": "application/xml",
    "content-length": method === "HEAD" ? 0 : Buffer.byteLength(body),
  });
  res.end(method === "HEAD" ? undefined : body);
}

export class FaultProxy {
  private server!: Server;
  private port = 0;
  private inFlight = 0;
  /** Requests received, faulty ones included. */
  requests = 0;
  /** The most requests in flight at once. */
  maxInFlight = 0;
  /** Response body bytes written to clients. */
  bodyBytesSent = 0;
  /** Faults injected, by kind. */
  readonly injected = new Map<string, number>();
  readonly log: ProxiedRequest[] = [];

  private constructor(
    private readonly upstream: URL,
    public options: FaultProxyOptions,
  ) {}

  static async start(upstream: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
    const proxy = new FaultProxy(new URL(upstream), options);
    proxy.server = createServer((req, res) => void proxy.handle(req, res));
    proxy.server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    proxy.port = (proxy.server.address() as AddressInfo).port;
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  resetCounters(): void {
    this.requests = 0;
    this.maxInFlight = 0;
    this.bodyBytesSent = 0;
    this.injected.clear();
    this.log.length = 0;
  }

  private count(kind: string): void {
    this.injected.set(kind, (this.injected.get(kind) ?? 0) + 1);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const n = ++this.requests;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    res.on("close", () => this.inFlight--);
    const info: ProxiedRequest = { n, method: req.method ?? "GET", url: req.url ?? "/", headers: req.headers };
    this.log.push(info);
    const body = await readBody(req);
    const fault = this.options.policy?.(info) ?? { kind: "pass" };
    if (fault.kind !== "pass") this.count(fault.kind === "status" ? String(fault.status) : fault.kind);

    switch (fault.kind) {
      case "status":
        return s3Error(res, fault.status, info.method);
      case "drop-before":
        req.socket.destroy();
        return;
      case "hang":
        return;
    }
    if (info.method === "PUT" && req.headers["if-none-match"] === "*") {
      if (this.options.refuseIfNoneMatch) return s3Error(res, 501, info.method);
      const path = decodeURIComponent(info.url.split("?")[0].slice(1));
      if (this.options.emulateIfNoneMatch && (await this.options.emulateIfNoneMatch(path))) {
        return s3Error(res, 412, info.method);
      }
    }

    const headers = { ...req.headers };
    if (this.options.ignoreRange) delete headers.range;
    const upstream = httpRequest({
      host: this.upstream.hostname,
      port: this.upstream.port,
      method: req.method,
      path: req.url,
      headers,
    });
    upstream.on("error", () => req.socket.destroy());
    upstream.on("response", (up) => {
      if (fault.kind === "drop-after") {
        up.resume();
        up.on("end", () => req.socket.destroy());
        return;
      }
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (fault.kind === "cut-body") {
        let left = fault.bytes;
        up.on("data", (chunk: Buffer) => {
          if (left <= 0) return;
          const part = chunk.subarray(0, left);
          left -= part.length;
          this.bodyBytesSent += part.length;
          res.write(part);
          if (left <= 0) {
            up.destroy();
            // Let the bytes reach the client, then break the connection mid-body.
            setTimeout(() => req.socket.destroy(), 20);
          }
        });
        up.on("end", () => req.socket.destroy());
        return;
      }
      void this.pipeBody(up, res);
    });
    upstream.end(body);
  }

  /** Copies a response body to the client, in trickled pieces when asked; stops when the client goes away. */
  private async pipeBody(up: IncomingMessage, res: ServerResponse): Promise<void> {
    const piece = this.options.trickleBytes;
    let closed = false;
    res.on("close", () => {
      closed = true;
      up.destroy();
    });
    try {
      for await (const chunk of up as AsyncIterable<Buffer>) {
        if (!piece) {
          if (closed) return;
          this.bodyBytesSent += chunk.length;
          if (!res.write(chunk)) await drainedOrClosed(res);
          continue;
        }
        for (let at = 0; at < chunk.length; at += piece) {
          if (closed) return;
          const part = chunk.subarray(at, at + piece);
          this.bodyBytesSent += part.length;
          res.write(part);
          await new Promise((r) => setTimeout(r, this.options.trickleDelayMs ?? 1));
        }
      }
      res.end();
    } catch {
      res.destroy();
    }
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * Every third request fails, in turn with 500, 503 and a dropped connection
 * (before or after forwarding). A request the SDK is already retrying for the
 * `maxConsecutive`-th time (its amz-sdk-request header says so) is let
 * through, so that a bounded retry always succeeds: with requests from many
 * uploads interleaved, one request could otherwise draw the failing slot
 * again and again.
 */
export function everyThirdFails(maxConsecutive = 2): (req: ProxiedRequest) => Fault {
  const faults: Fault[] = [
    { kind: "status", status: 500 },
    { kind: "status", status: 503 },
    { kind: "drop-before" },
    { kind: "drop-after" },
  ];
  let failures = 0;
  return (req) => {
    const attempt = Number(/attempt=(\d+)/.exec(String(req.headers["amz-sdk-request"] ?? ""))?.[1] ?? 1);
    if (req.n % 3 !== 0 || attempt > maxConsecutive) return { kind: "pass" };
    return faults[failures++ % faults.length];
  };
}

/**
 * Resolves once `res` drains or closes, whichever comes first, and removes
 * both listeners then: a `once` left behind on the other event stayed
 * attached for the response's life, one more at every backpressure (Node's
 * MaxListenersExceededWarning on a long body).
 */
function drainedOrClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
}
