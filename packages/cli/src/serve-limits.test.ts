/**
 * `castore serve` limit flags, set through their CASTORE_* environment
 * variables or on the command line, reach the server: entries per
 * directory, idle timeout, concurrent streams per connection, connections
 * per server, connection idle timeout.
 */
import { spawn } from "node:child_process";
import * as http2 from "node:http2";
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { fixtures, makeDirectory, makeFileNode, openDirectoryService } from "@castore-ts/core";

const { EMPTY_BLOB_DIGEST } = fixtures;
import "@castore-ts/backend-grpc";
import { grpcCodeOf } from "@castore-ts/backend-grpc";
import { runCastore, waitFor } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

const RESOURCE_EXHAUSTED = 8;
const DEADLINE_EXCEEDED = 4;
const UNAVAILABLE = 14;

/** Starts `castore serve` with `args`; resolves with its URL and the stderr seen so far. */
async function startCastoreServe(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(
    process.execPath,
    [CASTORE_CLI, "serve", "--listen", "127.0.0.1:0", "--store", "memory://", ...args],
    {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, ...env },
    },
  );
  const stderr = { text: "" };
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`castore serve did not start: ${stderr.text}`)), 30_000);
    child.stderr.on("data", (c: Buffer) => {
      stderr.text += c.toString();
      const m = / at (grpc\+\S+)/.exec(stderr.text);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    void exited.then((code) => reject(new Error(`castore serve exited with ${code}: ${stderr.text}`)));
  });
  return {
    url,
    stderr,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

describe("castore serve limits from the environment", () => {
  it("CASTORE_MAX_DIRECTORY_ENTRIES, CASTORE_IDLE_TIMEOUT_MS, CASTORE_MAX_CONCURRENT_STREAMS", async () => {
    const child = spawn(process.execPath, [CASTORE_CLI, "serve", "--listen", "127.0.0.1:0", "--store", "memory://"], {
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        ...process.env,
        CASTORE_MAX_DIRECTORY_ENTRIES: "2",
        CASTORE_IDLE_TIMEOUT_MS: "300",
        CASTORE_MAX_CONCURRENT_STREAMS: "3",
      },
    });
    let err = "";
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`castore serve did not start: ${err}`)), 30_000);
        child.stderr.on("data", (c: Buffer) => {
          err += c.toString();
          const m = / at (grpc\+\S+)/.exec(err);
          if (m) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        });
        void exited.then((code) => reject(new Error(`castore serve exited with ${code}: ${err}`)));
      });
      const client = await openDirectoryService(url);
      const files = (n: number) =>
        makeDirectory({
          files: Array.from({ length: n }, (_, i) => makeFileNode(`f${i}`, EMPTY_BLOB_DIGEST, 0n, false)),
        });
      await client.put(files(2));
      const e = await client.put(files(3)).catch((x: unknown) => x);
      expect(grpcCodeOf(e)).toBe(RESOURCE_EXHAUSTED);
      expect(String((e as Error).message)).toMatch(/3 entries, more than the limit of 2/);
      await client.close();

      const session = http2.connect(`http://${new URL(url).host}`);
      session.on("error", () => {});
      try {
        await new Promise((r) => session.once("remoteSettings", r));
        expect(session.remoteSettings.maxConcurrentStreams).toBe(3);
        const stream = session.request({
          ":method": "POST",
          ":path": "/tvix.castore.v1.DirectoryService/Put",
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.on("error", () => {});
        stream.resume();
        // the request has no deadline of its own: only the server's idle timer can end it
        const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("trailers", resolve));
        expect(trailers["grpc-status"]).toBe(String(DEADLINE_EXCEEDED));
      } finally {
        session.destroy();
      }
    } finally {
      if (child.exitCode === null) child.kill("SIGTERM");
      expect(await exited).toBe(0);
    }
  }, 60_000);
});

describe("castore serve --max-connections, --connection-idle-timeout-ms", () => {
  it("--help tells them and their defaults", async () => {
    const { code, stdout } = await runCastore(CASTORE_CLI, ["serve", "--help"]);
    expect(code).toBe(0);
    const help = stdout.toString().replace(/\s+/g, " ");
    expect(help).toMatch(
      /--max-connections <n> most connections open at once.*\(default: 1000, env: CASTORE_MAX_CONNECTIONS\)/,
    );
    expect(help).toMatch(
      /--connection-idle-timeout-ms <n> close a connection with no call open.*0: never \(default: 300000, env: CASTORE_CONNECTION_IDLE_TIMEOUT_MS\)/,
    );
  });

  it("bad values are refused", async () => {
    for (const args of [
      ["--max-connections", "0"],
      ["--connection-idle-timeout-ms", "-1"],
      ["--max-connections", "many"],
    ]) {
      const { code, stderr } = await runCastore(CASTORE_CLI, [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--store",
        "memory://",
        ...args,
      ]);
      expect(code, args.join(" ")).not.toBe(0);
      expect(stderr).toMatch(/expected a (positive|non-negative) integer/);
    }
  });

  it("the (n+1)-th connection is refused while n work; idle ones are closed, and their clients reconnect", async () => {
    const serve = await startCastoreServe([
      "--max-connections",
      "2",
      "--connection-idle-timeout-ms",
      "1500",
      "--log-level",
      "info",
    ]);
    try {
      // logged at startup with the other limits (pino writes on its own schedule)
      for (let i = 0; i < 200 && !serve.stderr.text.includes('"msg":"castore serving"'); i++)
        await new Promise((r) => setTimeout(r, 25));
      const started = serve.stderr.text
        .split("\n")
        .map((l) => (l.startsWith("{") ? JSON.parse(l) : {}))
        .find((l) => l.msg === "castore serving");
      expect(started).toMatchObject({ maxConnections: 2, connectionIdleTimeoutMs: 1500, maxConcurrentStreams: 100 });

      const clients = [
        await openDirectoryService(serve.url),
        await openDirectoryService(serve.url),
        await openDirectoryService(serve.url),
      ];
      try {
        const [one, two, three] = clients as [(typeof clients)[0], (typeof clients)[0], (typeof clients)[0]];
        const root = await one.put(makeDirectory());
        expect(await two.get(root)).toBeDefined();
        // the third connection is closed at once: refused, not given up after the client's connect timeout
        const refused = await three.get(root).catch((e: unknown) => e);
        expect(grpcCodeOf(refused)).toBe(UNAVAILABLE);
        expect(String((refused as Error).message)).toMatch(/connection refused/);
        expect(String((refused as Error).message)).not.toMatch(/connect timeout/);
        const socket = net.connect(Number(new URL(serve.url).port), "127.0.0.1");
        socket.on("error", () => {});
        let bytes = 0;
        socket.on("data", (d: Buffer) => (bytes += d.length));
        await new Promise((r) => socket.once("close", r));
        expect(bytes).toBe(0);
        // the two open ones still work
        expect(await one.get(root)).toBeDefined();
        expect(await two.get(root)).toBeDefined();
        // once idle, both are closed (GOAWAY): places free, and the clients reconnect for their next call
        await waitFor(
          () =>
            three.get(root).then(
              (d) => d !== undefined,
              () => false,
            ),
          "the third client gets a place once the others were closed as idle",
        );
        // the first reconnects too, once the second's idle connection is closed as well (its own timer)
        await waitFor(
          () =>
            one.get(root).then(
              (d) => d !== undefined,
              () => false,
            ),
          "the first client reconnects once a second place is free",
        );
      } finally {
        for (const c of clients) await c.close();
      }
    } finally {
      expect(await serve.stop()).toBe(0);
    }
    expect(serve.stderr.text).toMatch(/connection refused: maxConnections are open/);
  }, 60_000);
});
