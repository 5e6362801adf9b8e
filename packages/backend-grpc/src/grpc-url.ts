/**
 * Store URLs of the gRPC backend (spec §6):
 *   grpc+http://host:port        h2c over TCP
 *   grpc+https://host:port       TLS over TCP (`?ca=/path/ca.pem` for a private CA)
 *   grpc+unix:///path/socket     h2c over a Unix socket
 * Query options: `service=tvix|snix` (which service name to call, default
 * tvix), `connectTimeoutMs=N`, `maxMessageBytes=N` (largest message
 * accepted from the server, default 4 MiB), `token=T` (bearer token; the
 * environment variable CASTORE_AUTH_TOKEN is used when the URL has none).
 */
import * as fs from "node:fs";
import { InvalidUrlError, redactUrl } from "@castore-ts/core";

export type ServiceName = "tvix" | "snix";

export type GrpcTarget = { kind: "tcp"; host: string; port: number; tls: boolean } | { kind: "unix"; path: string };

export interface ParsedGrpcUrl {
  target: GrpcTarget;
  serviceName?: ServiceName;
  connectTimeoutMs?: number;
  /** Largest message accepted from the server (`?maxMessageBytes=`). */
  maxMessageBytes?: number;
  ca?: Buffer;
  /** Bearer token sent as `authorization: Bearer …` (`?token=`). */
  token?: string;
}

const KNOWN_QUERY = ["service", "connectTimeoutMs", "maxMessageBytes", "ca", "token"];
/** gRPC's length prefix is 32 bits: no message can be longer. */
const MAX_GRPC_MESSAGE_BYTES = 2 ** 32 - 1;

export function parseGrpcUrl(url: URL): ParsedGrpcUrl {
  const shown = JSON.stringify(redactUrl(url.toString()));
  const fail = (why: string): never => {
    throw new InvalidUrlError(`invalid gRPC store URL ${shown}: ${why}`);
  };
  for (const key of url.searchParams.keys()) {
    if (!KNOWN_QUERY.includes(key)) fail(`unknown option "${key}" (known: ${KNOWN_QUERY.join(", ")})`);
  }
  const parsed: Partial<ParsedGrpcUrl> = {};
  const service = url.searchParams.get("service");
  if (service !== null) {
    if (service !== "tvix" && service !== "snix") fail(`service must be "tvix" or "snix", got "${service}"`);
    parsed.serviceName = service as ServiceName;
  }
  const timeout = url.searchParams.get("connectTimeoutMs");
  if (timeout !== null) {
    const n = Number(timeout);
    if (!Number.isInteger(n) || n <= 0) fail(`connectTimeoutMs must be a positive integer, got "${timeout}"`);
    parsed.connectTimeoutMs = n;
  }
  const maxMessageBytes = url.searchParams.get("maxMessageBytes");
  if (maxMessageBytes !== null) {
    const n = /^[0-9]+$/.test(maxMessageBytes) ? Number(maxMessageBytes) : NaN;
    if (!Number.isSafeInteger(n) || n <= 0 || n > MAX_GRPC_MESSAGE_BYTES) {
      fail(
        `maxMessageBytes must be a whole number of bytes from 1 to ${MAX_GRPC_MESSAGE_BYTES} (gRPC's 32-bit length prefix), got "${maxMessageBytes}"`,
      );
    }
    parsed.maxMessageBytes = n;
  }
  const token = url.searchParams.get("token");
  if (token !== null) {
    // Never shown: only say what is wrong with it.
    if (token === "" || /\s/.test(token)) fail("token must be non-empty and contain no whitespace");
    parsed.token = token;
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  const ca = url.searchParams.get("ca");
  if (ca !== null) {
    if (scheme !== "grpc+https") fail("ca is only meaningful for grpc+https");
    try {
      parsed.ca = fs.readFileSync(ca);
    } catch (e) {
      fail(`cannot read ca file ${JSON.stringify(ca)}: ${(e as Error).message}`);
    }
  }
  switch (scheme) {
    case "grpc+http":
    case "grpc+https": {
      if (!url.hostname) fail("missing host (expected grpc+http://host:port)");
      if (url.pathname !== "" && url.pathname !== "/") fail("a TCP address takes no path");
      const tls = scheme === "grpc+https";
      const port = url.port === "" ? (tls ? 443 : 80) : Number(url.port);
      // URL keeps brackets around IPv6 literals; net.connect wants them without.
      const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
      parsed.target = { kind: "tcp", host, port, tls };
      break;
    }
    case "grpc+unix": {
      if (url.hostname !== "") fail("expected an absolute socket path, as grpc+unix:///path/to/socket");
      const path = decodeURIComponent(url.pathname);
      if (!path.startsWith("/") || path === "/") fail("missing socket path (expected grpc+unix:///path/to/socket)");
      parsed.target = { kind: "unix", path };
      break;
    }
    default:
      fail(`scheme "${scheme}:" is not a gRPC scheme (grpc+http, grpc+https, grpc+unix)`);
  }
  return parsed as ParsedGrpcUrl;
}

/** How a target is named in messages: the store URL without query options. */
export function describeTarget(target: GrpcTarget): string {
  if (target.kind === "unix") return `grpc+unix://${target.path}`;
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  return `grpc+${target.tls ? "https" : "http"}://${host}:${target.port}`;
}
