/**
 * `castore serve` limits flags and authentication, end to end through the
 * built binary: no secret (bearer tokens, a password or token inside the
 * store URL) ever appears in its output, at debug log level, nor in the
 * output of clients that used wrong tokens.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BackendError, directoryDigest, fixtures, openDirectoryService } from "@castore-ts/core";
import "@castore-ts/backend-grpc";
import { createDirectoryServiceServer, grpcCodeOf } from "@castore-ts/backend-grpc";
import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import { runCastore } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

const GOOD = ["Tok3n-alpha-9f8e7d", "Tok3n-beta-1a2b3c"];
const BAD = "Wr0ng-tok3n-5e6f7a";
const FAR_SECRET = "Far-s3cret-44aa";
const PG_PASSWORD = "Pg-passw0rd-77cc";
const UNAUTHENTICATED = 16;
const SECRETS = [...GOOD, BAD, FAR_SECRET, PG_PASSWORD];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-serve-secrets-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `castore [global args] serve [args]`, all output captured; resolves once it listens. */
function serve(globalArgs: string[], args: string[]) {
  const child = spawn(process.execPath, [CASTORE_CLI, ...globalArgs, "serve", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`castore serve did not start: ${out}`)), 30_000);
    const onData = () => {
      const m = / at (grpc\+\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stderr.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`castore serve exited with ${code}: ${out}`));
    });
  });
  return {
    url,
    output: () => out,
    async stop(): Promise<number | null> {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

describe("castore serve: authentication and secrets", () => {
  it("refuses calls without a valid token, serves the right ones, and never prints a secret", async () => {
    const tokenFile = join(dir, "tokens");
    writeFileSync(tokenFile, `# tokens for CI\n\n${GOOD[0]}\n  ${GOOD[1]}  \n`);
    // A store URL that carries secrets but still serves: a cache whose far
    // side is a token-protected gRPC server named with its token, and a
    // password in the URL's user-info.
    const farServer = createDirectoryServiceServer(new MemoryDirectoryService(), {
      listen: { host: "127.0.0.1", port: 0 },
      authTokens: [FAR_SECRET],
    });
    await farServer.listen();
    const far = `${farServer.url}?token=${FAR_SECRET}`;
    const store = `cache://user:${PG_PASSWORD}@x/?near=${encodeURIComponent("memory://")}&far=${encodeURIComponent(far)}`;
    const server = serve(
      ["--log-level", "debug"],
      ["--listen", "127.0.0.1:0", "--store", store, "--auth-token-file", tokenFile, "--idle-timeout-ms", "5000"],
    );
    const clientOutput: string[] = [];
    let code: number | null;
    try {
      const url = await server.url;
      const { DIRECTORY_A, DIRECTORY_B } = fixtures;
      // right tokens, by URL and by CASTORE_AUTH_TOKEN
      const good = await openDirectoryService(`${url}?token=${GOOD[0]}`);
      const root = await good.put(DIRECTORY_A);
      expect((await good.get(root))?.directories).toEqual([]);
      await good.close();
      const viaCli = await runCastore(CASTORE_CLI, ["get", root.hex, "--json", "--store", url], {
        env: { CASTORE_AUTH_TOKEN: GOOD[1] },
      });
      expect(viaCli.code, viaCli.stderr).toBe(0);
      // wrong and missing tokens
      for (const target of [`${url}?token=${BAD}`, url]) {
        const client = await openDirectoryService(target);
        const e = await client.get(root).catch((err: unknown) => err);
        expect(e).toBeInstanceOf(BackendError);
        expect(grpcCodeOf(e)).toBe(UNAUTHENTICATED);
        clientOutput.push(String(e), String((e as Error).stack));
        await client.close();
      }
      const viaCliBad = await runCastore(CASTORE_CLI, [
        "get",
        root.hex,
        "--store",
        `${url}?token=${BAD}`,
        "--log-level",
        "debug",
      ]);
      expect(viaCliBad.code).toBe(1);
      expect(viaCliBad.stderr).toMatch(/nauthenticated|token/i);
      clientOutput.push(viaCliBad.stderr, viaCliBad.stdout.toString());
      // a raw HTTP/2 gRPC call with a wrong bearer token
      const session = http2.connect(`http://${new URL(url).host}`);
      const stream = session.request({
        ":method": "POST",
        ":path": "/tvix.castore.v1.DirectoryService/Get",
        "content-type": "application/grpc",
        te: "trailers",
        authorization: `Bearer ${BAD}`,
      });
      stream.end(Buffer.from([0, 0, 0, 0, 34, 0x0a, 0x20, ...root.bytes]));
      stream.resume();
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => {
        stream.once("trailers", resolve);
        stream.once("response", (h) => h["grpc-status"] !== undefined && resolve(h));
      });
      session.destroy();
      expect(trailers["grpc-status"]).toBe(String(UNAUTHENTICATED));
      clientOutput.push(String(trailers["grpc-message"]));
      // a miss goes to the far side
      const missing = await openDirectoryService(`${url}?token=${GOOD[0]}`);
      const miss = await missing.get(directoryDigest(DIRECTORY_B)).catch((err: unknown) => err);
      expect(miss).toBeUndefined();
      await missing.close();
    } finally {
      code = await server.stop();
      await farServer.close();
    }
    expect(code).toBe(0);
    const all = server.output() + clientOutput.join("\n");
    expect(server.output()).toMatch(/"level":20/); // debug logs were on
    expect(server.output()).toMatch(/not authenticated/);
    for (const secret of SECRETS) expect(all.includes(secret), `${secret} leaked:\n${all}`).toBe(false);
  }, 120_000);

  it("--help and a bad token file show no token", async () => {
    const help = await runCastore(CASTORE_CLI, ["serve", "--help"], {
      env: { CASTORE_AUTH_TOKEN_FILE: join(dir, "tokens"), CASTORE_AUTH_TOKEN: GOOD[0] },
    });
    expect(help.code).toBe(0);
    const text = help.stdout.toString();
    for (const flag of [
      "--max-directory-entries",
      "CASTORE_MAX_DIRECTORY_ENTRIES",
      "--max-concurrent-streams",
      "CASTORE_MAX_CONCURRENT_STREAMS",
      "--idle-timeout-ms",
      "CASTORE_IDLE_TIMEOUT_MS",
      "--auth-token-file",
      "CASTORE_AUTH_TOKEN_FILE",
    ]) {
      expect(text).toContain(flag);
    }
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    const bad = join(dir, "bad-tokens");
    writeFileSync(bad, `${GOOD[0]} ${GOOD[1]}\n`);
    const r = await runCastore(CASTORE_CLI, [
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--store",
      "memory://",
      "--auth-token-file",
      bad,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad-tokens: token file: .*whitespace/);
    for (const secret of SECRETS) expect(r.stderr).not.toContain(secret);
  }, 60_000);
});
