import { Command, Option } from "commander";
import {
  createDirectoryServiceServer,
  DEFAULT_CONNECTION_IDLE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CONCURRENT_STREAMS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_ENTRIES_PER_DIRECTORY,
  type ListenTarget,
  parseAuthTokens,
} from "@castore-ts/backend-grpc";
import { RefService, redactUrl } from "@castore-ts/core";
import { readFileSync } from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { createLogger, type LogLevel } from "../logger.js";
import { DEFAULT_STORE, openBlobsIfAny, openRefsIfAny, openStore } from "../stores.js";
import { SIZE_CHECK_HELP, nonNegativeInt, parseSizeCheck, positiveInt } from "./options.js";

/** Bearer tokens from a token file; errors name the file, never its content. */
export function readAuthTokenFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`--auth-token-file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? "error"})`);
  }
  try {
    return parseAuthTokens(text);
  } catch (e) {
    throw new Error(`--auth-token-file ${path}: ${(e as Error).message}`);
  }
}

/** `--listen` forms: host:port, [v6]:port, :port, or unix:/path. */
export function parseListen(text: string): ListenTarget {
  if (text.startsWith("unix:")) {
    const path = text.slice("unix:".length);
    if (!path) throw new Error(`--listen ${text}: unix: needs a socket path, e.g. unix:/run/castore.sock`);
    return { path };
  }
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!m || Number(m[3]) > 65535) {
    throw new Error(
      `--listen ${JSON.stringify(text)}: expected HOST:PORT (e.g. 127.0.0.1:8000) or unix:/path/to/socket`,
    );
  }
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port: Number(m[3]) };
}

/** `--metrics-listen` forms: host:port, [v6]:port, :port. */
export function parseMetricsListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (!m || Number(m[3]) > 65535)
    throw new Error(`--metrics-listen ${JSON.stringify(text)}: expected HOST:PORT, e.g. 127.0.0.1:9090`);
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port: Number(m[3]) };
}

export function serveCommand(): Command {
  return new Command("serve")
    .description(
      "Serve a store over gRPC (tvix.castore.v1 and snix.castore.v1 DirectoryService, BlobService when the store keeps blobs, and castore.refs.v1.RefService when it keeps refs) until SIGINT/SIGTERM",
    )
    .addOption(
      new Option("--listen <address>", "HOST:PORT or unix:/path/to/socket")
        .default("127.0.0.1:8000")
        .env("CASTORE_LISTEN"),
    )
    .addOption(
      new Option("--store <url>", "store URL to serve (see `castore --help` for the schemes)")
        .default(DEFAULT_STORE)
        .env("CASTORE_STORE"),
    )
    .addOption(
      new Option("--size-check <mode>", `${SIZE_CHECK_HELP}; applies to uploads and to reads`)
        .argParser(parseSizeCheck)
        .default("exact")
        .env("CASTORE_SIZE_CHECK"),
    )
    .addOption(
      new Option("--max-message-bytes <n>", "largest gRPC message accepted")
        .default(4 * 1024 * 1024)
        .argParser(positiveInt)
        .env("CASTORE_MAX_MESSAGE_BYTES"),
    )
    .addOption(
      new Option("--max-upload-directories <n>", "most directories in one Put")
        .default(1_000_000)
        .argParser(positiveInt)
        .env("CASTORE_MAX_UPLOAD_DIRECTORIES"),
    )
    .addOption(
      new Option("--max-upload-bytes <n>", "most bytes in one Put")
        .default(256 * 1024 * 1024)
        .argParser(positiveInt)
        .env("CASTORE_MAX_UPLOAD_BYTES"),
    )
    .addOption(
      new Option(
        "--max-directory-entries <n>",
        "most entries (directories + files + symlinks) in one uploaded directory",
      )
        .default(DEFAULT_MAX_ENTRIES_PER_DIRECTORY)
        .argParser(positiveInt)
        .env("CASTORE_MAX_DIRECTORY_ENTRIES"),
    )
    .addOption(
      new Option("--max-concurrent-streams <n>", "most concurrent calls per HTTP/2 connection")
        .default(DEFAULT_MAX_CONCURRENT_STREAMS)
        .argParser(positiveInt)
        .env("CASTORE_MAX_CONCURRENT_STREAMS"),
    )
    .addOption(
      new Option(
        "--max-connections <n>",
        "most connections open at once; one more is closed as soon as it is accepted (clients see UNAVAILABLE), open ones are not touched",
      )
        .default(DEFAULT_MAX_CONNECTIONS)
        .argParser(positiveInt)
        .env("CASTORE_MAX_CONNECTIONS"),
    )
    .addOption(
      new Option(
        "--connection-idle-timeout-ms <n>",
        "close a connection with no call open for this long (GOAWAY: clients reconnect for their next call); 0: never",
      )
        .default(DEFAULT_CONNECTION_IDLE_TIMEOUT_MS)
        .argParser(nonNegativeInt)
        .env("CASTORE_CONNECTION_IDLE_TIMEOUT_MS"),
    )
    .addOption(
      new Option(
        "--idle-timeout-ms <n>",
        "end a call whose client sends nothing for this long (DEADLINE_EXCEEDED, upload aborted); 0: never",
      )
        .default(DEFAULT_IDLE_TIMEOUT_MS)
        .argParser(nonNegativeInt)
        .env("CASTORE_IDLE_TIMEOUT_MS"),
    )
    .addOption(
      new Option(
        "--auth-token-file <file>",
        "require `authorization: Bearer TOKEN` on every call; the file holds the accepted tokens, one per line (# comments)",
      ).env("CASTORE_AUTH_TOKEN_FILE"),
    )
    .addOption(
      new Option("--tls-cert <file>", "PEM certificate: serve over TLS (needs --tls-key)").env("CASTORE_TLS_CERT"),
    )
    .addOption(new Option("--tls-key <file>", "PEM private key for --tls-cert").env("CASTORE_TLS_KEY"))
    .addOption(
      new Option("--metrics-listen <address>", "serve Prometheus metrics at http://HOST:PORT/metrics (plain HTTP)").env(
        "CASTORE_METRICS_LISTEN",
      ),
    )
    .addOption(
      new Option("--shutdown-deadline-ms <n>", "how long running calls may finish after SIGINT/SIGTERM")
        .default(10_000)
        .argParser(positiveInt),
    )
    .action(async (opts, cmd: Command) => {
      const logger = createLogger(cmd.optsWithGlobals().logLevel as LogLevel);
      const listen = parseListen(opts.listen);
      if (Boolean(opts.tlsCert) !== Boolean(opts.tlsKey)) throw new Error("--tls-cert and --tls-key go together");
      const metricsListen = opts.metricsListen ? parseMetricsListen(opts.metricsListen) : undefined;
      const authTokens = opts.authTokenFile ? readAuthTokenFile(opts.authTokenFile) : undefined;
      const service = await openStore(opts.store, { sizeCheck: opts.sizeCheck });
      // The same store's blobs, when its backend stores blobs; else BlobService calls answer UNIMPLEMENTED.
      const blobs = await openBlobsIfAny(opts.store);
      // Its refs too (castore.refs.v1, castore's extension service), checked against this same store.
      const opened = await openRefsIfAny(opts.store);
      const refs = opened ? new RefService(opened.store, service, blobs, { protect: opened.protect }) : undefined;
      const server = createDirectoryServiceServer(service, {
        listen,
        blobs,
        refs,
        tls: opts.tlsCert ? { cert: readFileSync(opts.tlsCert), key: readFileSync(opts.tlsKey) } : undefined,
        maxMessageBytes: opts.maxMessageBytes,
        maxDirectoriesPerUpload: opts.maxUploadDirectories,
        maxUploadBytes: opts.maxUploadBytes,
        maxEntriesPerDirectory: opts.maxDirectoryEntries,
        maxConcurrentStreams: opts.maxConcurrentStreams,
        maxConnections: opts.maxConnections,
        connectionIdleTimeoutMs: opts.connectionIdleTimeoutMs,
        idleTimeoutMs: opts.idleTimeoutMs,
        authTokens,
        shutdownDeadlineMs: opts.shutdownDeadlineMs,
        metrics: metricsListen ? {} : undefined,
        logger,
      });
      await server.listen();
      let metricsServer: http.Server | undefined;
      let metricsUrl: string | undefined;
      if (metricsListen) {
        const registry = server.metrics!.registry;
        metricsServer = http.createServer((req, res) => {
          if (req.method !== "GET" || req.url?.split("?", 1)[0] !== "/metrics") {
            res.writeHead(404, { "content-type": "text/plain" }).end("not found: try GET /metrics\n");
            return;
          }
          registry.metrics().then(
            (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
            (e: unknown) => {
              logger.warn({ err: e }, "collecting metrics failed");
              res.writeHead(500, { "content-type": "text/plain" }).end("collecting metrics failed\n");
            },
          );
        });
        await new Promise<void>((resolve, reject) => {
          metricsServer!.once("error", reject);
          metricsServer!.listen(metricsListen.port, metricsListen.host, () => resolve());
        });
        const info = metricsServer.address() as AddressInfo;
        metricsUrl = `http://${info.address.includes(":") ? `[${info.address}]` : info.address}:${info.port}/metrics`;
      }
      logger.info(
        {
          listen: server.address,
          url: server.url,
          store: redactUrl(opts.store),
          sizeCheck: opts.sizeCheck,
          blobs: blobs ? "served" : "not served: this store's scheme keeps no blobs",
          refs: refs ? "served" : "not served: this store's scheme keeps no refs",
          maxMessageBytes: opts.maxMessageBytes,
          maxUploadDirectories: opts.maxUploadDirectories,
          maxUploadBytes: opts.maxUploadBytes,
          maxDirectoryEntries: opts.maxDirectoryEntries,
          maxConcurrentStreams: opts.maxConcurrentStreams,
          maxConnections: opts.maxConnections,
          connectionIdleTimeoutMs: opts.connectionIdleTimeoutMs,
          idleTimeoutMs: opts.idleTimeoutMs,
          auth: authTokens ? `${authTokens.length} bearer token(s)` : "none",
          tls: Boolean(opts.tlsCert),
          metrics: metricsUrl ?? "off",
        },
        "castore serving",
      );
      // One line on stderr even at the default log level: where to connect.
      process.stderr.write(
        `castore: serving ${redactUrl(opts.store)} at ${server.url}` +
          (blobs ? " (directories and blobs)\n" : " (directories only: this store's scheme keeps no blobs)\n"),
      );
      if (metricsUrl) process.stderr.write(`castore: metrics at ${metricsUrl}\n`);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          process.stderr.write(`castore: ${signal}: shutting down\n`);
          server
            .close({ deadlineMs: opts.shutdownDeadlineMs })
            .catch((e) => logger.error({ err: e }, "shutdown failed"))
            .then(
              () =>
                new Promise<void>((r) => {
                  if (!metricsServer) return r();
                  metricsServer.close(() => r());
                  metricsServer.closeAllConnections();
                }),
            )
            .finally(resolve);
        };
        process.once("SIGINT", () => stop("SIGINT"));
        process.once("SIGTERM", () => stop("SIGTERM"));
      });
    });
}
