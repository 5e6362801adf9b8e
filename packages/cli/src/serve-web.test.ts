/**
 * `castore serve --web-listen` as a process: the address from the flag or
 * CASTORE_WEB_LISTEN, the URL printed on stderr, the app's page served from
 * the files the cli ships, and a bad address refused naming the flag. (The
 * web port itself is tested in @castore-ts/web, the app in a browser in
 * packages/e2e/src/web-browser.test.ts.)
 */
import * as http from "node:http";
import { describe, expect, it } from "vitest";
import { fixtures } from "@castore-ts/core";
import { runCastore, startCastoreServe } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

function get(url: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      })
      .on("error", reject);
  });
}

describe("castore serve --web-listen", () => {
  it("listens where CASTORE_WEB_LISTEN says, prints the URL, serves the app and blobs", async () => {
    const server = await startCastoreServe(CASTORE_CLI, ["--listen", "127.0.0.1:0", "--store", "memory://"], {
      env: { CASTORE_WEB_LISTEN: "127.0.0.1:0" },
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const look = () => {
          const m = /castore: web at (http:\/\/127\.0\.0\.1:\d+\/)\n/.exec(server.stderr());
          if (m) resolve(m[1]);
        };
        server.child.stderr!.on("data", look);
        server.child.once("exit", () => reject(new Error(server.stderr())));
        look();
      });
      const page = await get(url);
      expect(page.status).toBe(200);
      expect(page.headers["cache-control"]).toBe("no-cache");
      expect(page.body).toMatch(/<script type="module" crossorigin src="\/assets\/index-[\w-]+\.js"><\/script>/);
      const empty = await get(`${url}blob/${fixtures.EMPTY_BLOB_DIGEST.hex}`);
      expect(empty.status).toBe(200);
      expect(empty.headers["content-length"]).toBe("0");
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });

  it("refuses an address that is not HOST:PORT, naming the flag", async () => {
    const r = await runCastore(CASTORE_CLI, ["serve", "--store", "memory://", "--web-listen", "unix:/tmp/x.sock"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--web-listen "unix:/tmp/x.sock": expected HOST:PORT');
  });
});
