import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { Digest, type DirectoryService, createBlake3Hasher, openDirectoryService } from "@castore-ts/core";
import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import "@castore-ts/backend-grpc";
import { createDirectoryServiceServer } from "@castore-ts/backend-grpc";
import { brokenBackends } from "@castore-ts/conformance/broken";
import { runCastore, startCastoreServe } from "@castore-ts/testing";
import { CASTORE_CLI } from "./test-castore-cli.js";

let dir: string;
let tree: string;
let store: string;

/** A tree with nested dirs, an executable, a symlink, an empty file, an empty dir and a non-UTF-8 name. */
function makeTree(root: string) {
  mkdirSync(join(root, "a", "b", "c"), { recursive: true });
  mkdirSync(join(root, "empty-dir"));
  writeFileSync(join(root, "a", "hello.txt"), "hello\n");
  writeFileSync(join(root, "a", "b", "c", "deep"), "deep");
  writeFileSync(join(root, "empty"), "");
  writeFileSync(join(root, "run.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(join(root, "run.sh"), 0o755);
  symlinkSync("a/hello.txt", join(root, "link"));
  // a name that is not UTF-8: bytes 'n' 0xff 0xfe
  writeFileSync(Buffer.concat([Buffer.from(join(root, "n")), Buffer.from([0xff, 0xfe])]), "binary name");
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "castore-cli-"));
  tree = join(dir, "tree");
  mkdirSync(tree);
  makeTree(tree);
  store = `lmdb://${join(dir, "store")}`;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function b3(text: string): string {
  const h = createBlake3Hasher();
  h.update(Buffer.from(text));
  return Buffer.from(h.digest()).toString("hex");
}

describe("castore CLI end to end", () => {
  let root: string;

  it("import prints the root digest, and is deterministic", async () => {
    const r = await runCastore(CASTORE_CLI, ["import", tree, "--store", store]);
    expect(r.stderr).not.toMatch(/castore:/);
    expect(r.code, r.stderr).toBe(0);
    root = r.stdout.toString().trim();
    expect(root).toMatch(/^[0-9a-f]{64}$/);
    const again = await runCastore(CASTORE_CLI, ["import", tree, "--store", `memory://`]);
    expect(again.stdout.toString().trim()).toBe(root);
  });

  it("ls lists the root like ls -l, with the executable bit, symlink and escaped non-UTF-8 name", async () => {
    const r = await runCastore(CASTORE_CLI, ["ls", root, "--store", store]);
    expect(r.code, r.stderr).toBe(0);
    const names = r.stdout
      .toString()
      .trim()
      .split("\n")
      .map((l) => /^\S+ +\d+ \S+ (.*)$/.exec(l)![1]);
    expect(names).toEqual(["a/", "empty", "empty-dir/", "link -> a/hello.txt", "n\\xff\\xfe", "run.sh"]);
    const text = r.stdout.toString();
    expect(text).toMatch(new RegExp(`^-r--r--r-- +0 ${b3("")} empty$`, "m"));
    expect(text).toMatch(new RegExp(`^-r-xr-xr-x +18 ${b3("#!/bin/sh\necho hi\n")} run.sh$`, "m"));
    expect(text).toMatch(/^lrwxrwxrwx +11 -+ link -> a\/hello.txt$/m);
    expect(text).toMatch(
      /^drwxr-xr-x +0 af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262 empty-dir\/$/m,
    );
    expect(text).toMatch(/ n\\xff\\xfe$/m);
    expect(text).toMatch(/^drwxr-xr-x +4 [0-9a-f]{64} a\/$/m); // size(c) = 1 (deep); size(b) = 1 + size(c) = 2; size(a) = 1 (hello.txt) + 1 + size(b) = 4
  });

  it("ls follows a path to a directory or a single node", async () => {
    const r = await runCastore(CASTORE_CLI, ["ls", root, "a/b/c", "--store", store]);
    expect(r.stdout.toString()).toMatch(new RegExp(`^-r--r--r-- +4 ${b3("deep")} deep\n$`));
    const f = await runCastore(CASTORE_CLI, ["ls", root, "/a/hello.txt", "--store", store]);
    expect(f.stdout.toString()).toMatch(/ hello.txt\n$/);
    const missing = await runCastore(CASTORE_CLI, ["ls", root, "a/nope", "--store", store]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^castore: a\/nope: no such path below [0-9a-f]{64}\n$/);
  });

  it("ls takes every name as it prints it: pasting a printed name back finds that node", async () => {
    // Names ls escapes: not UTF-8, a backslash, a control character, valid UTF-8 mixed with an invalid byte.
    const names = [
      Buffer.from([0xff]),
      Buffer.from("back\\slash"),
      Buffer.from("tab\there"),
      Buffer.concat([Buffer.from("café"), Buffer.from([0xfe])]),
    ];
    const odd = join(dir, "odd-names");
    mkdirSync(Buffer.concat([Buffer.from(`${odd}/`), names[1]]), { recursive: true });
    for (const name of names.slice(2))
      writeFileSync(Buffer.concat([Buffer.from(`${odd}/`), names[1], Buffer.from("/"), name]), name);
    writeFileSync(Buffer.concat([Buffer.from(`${odd}/`), names[0]]), "ff");
    const oddStore = `lmdb://${join(dir, "odd-store")}`;
    const imported = await runCastore(CASTORE_CLI, ["import", odd, "--store", oddStore]);
    expect(imported.code, imported.stderr).toBe(0);
    const oddRoot = imported.stdout.toString().trim();
    const printedName = (line: string) => /^\S+ +\d+ \S+ (.*?)\/?$/.exec(line)![1];
    const top = (await runCastore(CASTORE_CLI, ["ls", oddRoot, "--store", oddStore])).stdout
      .toString()
      .trim()
      .split("\n");
    expect(top.map(printedName)).toEqual(["back\\\\slash", "\\xff"]);
    // The directory's printed name, pasted back, lists it.
    const listed = await runCastore(CASTORE_CLI, ["ls", oddRoot, printedName(top[0]), "--store", oddStore]);
    expect(listed.code, listed.stderr).toBe(0);
    const sub = listed.stdout.toString().trim().split("\n");
    expect(sub.map(printedName)).toEqual(["café\\xfe", "tab\\x09here"]);
    // Each file's printed path, pasted back, shows that file's line.
    for (const [path, line] of [
      [printedName(top[1]), top[1]],
      ...sub.map((l) => [`${printedName(top[0])}/${printedName(l)}`, l]),
    ]) {
      const r = await runCastore(CASTORE_CLI, ["ls", oddRoot, path, "--store", oddStore]);
      expect(r.code, `${path}: ${r.stderr}`).toBe(0);
      expect(r.stdout.toString(), path).toBe(`${line}\n`);
    }
    const typo = await runCastore(CASTORE_CLI, ["ls", oddRoot, "back\\slash", "--store", oddStore]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(
      /^castore: "back\\\\slash": "\\\\sla" at character 4 is not an escape; write a backslash as .*\n$/,
    );
  });

  it("get --recursive --json returns the whole closure, names exact in base64", async () => {
    const r = await runCastore(CASTORE_CLI, ["get", root, "--recursive", "--json", "--store", store]);
    expect(r.code, r.stderr).toBe(0);
    const dirs = r.stdout
      .toString()
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(dirs[0].digest).toBe(root);
    expect(dirs).toHaveLength(5); // root, a, empty-dir, b, c
    const rootFiles = dirs[0].files.map((f: { name_b64: string }) => Buffer.from(f.name_b64, "base64"));
    expect(rootFiles).toContainEqual(Buffer.from([0x6e, 0xff, 0xfe]));
    expect(dirs[0].files.find((f: { name: string }) => f.name === "run.sh").executable).toBe(true);
    expect(dirs[0].symlinks[0]).toMatchObject({ name: "link", target: "a/hello.txt" });
  });

  it("get of an unknown digest fails with one line", async () => {
    const r = await runCastore(CASTORE_CLI, ["get", "00".repeat(32), "--store", store]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^castore: directory 0{64} not found in lmdb:\/\/.*\n$/);
  });

  it("bad input gets one clear line and a non-zero status", async () => {
    const bad = await runCastore(CASTORE_CLI, ["ls", "xyz", "--store", store]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/invalid digest "xyz"/);
    const scheme = await runCastore(CASTORE_CLI, ["ls", root, "--store", "nope://x"]);
    expect(scheme.code).toBe(1);
    expect(scheme.stderr).toMatch(/^castore: unknown store URL scheme "nope:" .* known: .*lmdb:/);
    const notDir = await runCastore(CASTORE_CLI, ["import", join(tree, "empty"), "--store", "memory://"]);
    expect(notDir.code).toBe(1);
    expect(notDir.stderr).toMatch(/is not a directory/);
  });

  it("import refuses sockets, naming the path", async () => {
    const sockDir = join(dir, "with-socket");
    mkdirSync(sockDir);
    const server = createServer();
    await new Promise<void>((r) => server.listen(join(sockDir, "sock"), r));
    try {
      const r = await runCastore(CASTORE_CLI, ["import", sockDir, "--store", "memory://"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cannot import .*with-socket\/sock: it is a socket/);
    } finally {
      server.close();
    }
  });

  it("--help explains every command", async () => {
    for (const cmd of [[], ["serve"], ["import"], ["ls"], ["get"], ["conformance"]]) {
      const r = await runCastore(CASTORE_CLI, [...cmd, "--help"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.toString()).toMatch(/Usage: castore/);
      if (cmd[0] === "ls" || cmd[0] === "get") {
        // How names are printed, and written in a PATH.
        expect(r.stdout.toString(), cmd[0]).toContain("as \\xNN (two hex digits)");
        expect(r.stdout.toString(), cmd[0]).toContain("castore ls ROOT 'dir/n\\xff\\xfe'");
      }
    }
    const help = (await runCastore(CASTORE_CLI, ["conformance", "--help"])).stdout.toString();
    for (const documented of [
      "--typed-errors",
      "--no-typed-errors",
      "castore-error-code",
      "--json",
      "--junit <file>",
      "an id prefix (closure.)",
      "--root <digest>",
      "--read-only",
      "roots.*",
      "legacy size",
      "--size-check <mode>",
      "snix-compat",
    ])
      expect(help).toContain(documented);
    const r = await runCastore(CASTORE_CLI, ["serve", "--help"]);
    expect(r.stdout.toString()).toMatch(/--listen <address>.*\n?.*CASTORE_LISTEN/);
  });

  it("serve makes the store readable through the gRPC client, and stops on SIGTERM", async () => {
    const sock = join(dir, "castore.sock");
    const server = await startCastoreServe(CASTORE_CLI, ["--listen", `unix:${sock}`, "--store", store]);
    try {
      const client = await openDirectoryService(`grpc+unix://${sock}`);
      const got = [];
      for await (const d of client.getRecursive(Digest.parse(root))) got.push(d);
      expect(got).toHaveLength(5);
      await client.close();
      const viaCli = await runCastore(CASTORE_CLI, ["ls", root, "a", "--store", `grpc+unix://${sock}`]);
      expect(viaCli.stdout.toString()).toMatch(/ hello.txt\n/);
    } finally {
      expect(await server.stop("SIGTERM")).toBe(0);
    }
  });

  it("serve on TCP, then conformance against the served memory store passes", async () => {
    const server = await startCastoreServe(CASTORE_CLI, ["--listen", "127.0.0.1:0", "--store", "memory://"]);
    try {
      const r = await runCastore(CASTORE_CLI, ["conformance", server.url], { timeoutMs: 120_000 });
      expect(r.stdout.toString()).toMatch(/\d+ passed, 0 failed, [1-9]\d* skipped/);
      expect(r.stdout.toString()).toMatch(/SKIP .*corrupt/i);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await server.stop();
    }
  }, 180_000);

  it("conformance against a served broken backend fails, naming the failing scenarios", async () => {
    for (const broken of [brokenBackends.childrenBeforeParents, brokenBackends.danglingUploads]) {
      const { service } = await broken.factory();
      const server = createDirectoryServiceServer(service, { listen: { host: "127.0.0.1", port: 0 } });
      await server.listen();
      try {
        const r = await runCastore(CASTORE_CLI, ["conformance", server.url!], { timeoutMs: 120_000 });
        expect(r.code, `${broken.name}: ${r.stdout}`).toBe(1);
        expect(r.stdout.toString()).toMatch(/[1-9]\d* failed/);
        const failing = r.stdout
          .toString()
          .split("\n")
          .filter((l) => l.startsWith("FAIL"));
        if (broken === brokenBackends.childrenBeforeParents) {
          // the gRPC client's stream check rejects a child before its parent
          expect(failing.join("\n")).toMatch(/\[uploads\.leaves-to-root\] §7.5 upload \[A, B\]/);
        } else {
          expect(failing.join("\n")).toMatch(/\[closure\.dangling-child\] §7.4 upload \[B\]/);
        }
      } finally {
        await server.close();
      }
    }
  }, 300_000);
});

describe("castore conformance: typed-error detection and reports", () => {
  /**
   * A server like tvix: its service raises plain Errors, so every rejection is
   * INTERNAL with no castore-error-code trailer.
   */
  function plainErrors(service: DirectoryService): DirectoryService {
    const plain = (e: unknown) => new Error((e as Error).message);
    return {
      get: (d, o) => service.get(d, o).catch((e) => Promise.reject(plain(e))),
      put: (d, o) => service.put(d, o).catch((e) => Promise.reject(plain(e))),
      getRecursive: async function* (d, o) {
        try {
          yield* service.getRecursive(d, o);
        } catch (e) {
          throw plain(e);
        }
      },
      putMultipleStart: (o) => {
        const p = service.putMultipleStart(o);
        return {
          put: (d) => p.put(d).catch((e) => Promise.reject(plain(e))),
          close: () => p.close().catch((e) => Promise.reject(plain(e))),
          abort: (r) => p.abort(r).catch((e) => Promise.reject(plain(e))),
        };
      },
      close: () => service.close(),
    };
  }

  it("a server answering INTERNAL without the trailer passes, untyped; forced --typed-errors it fails", async () => {
    const server = createDirectoryServiceServer(plainErrors(new MemoryDirectoryService()), {
      listen: { host: "127.0.0.1", port: 0 },
    });
    await server.listen();
    try {
      const probed = await runCastore(CASTORE_CLI, ["conformance", server.url!, "--filter", "closure."], {
        timeoutMs: 60_000,
      });
      expect(probed.stdout.toString()).toMatch(
        /error classes not checked: the server's rejections carry no castore-error-code trailer/,
      );
      expect(probed.stdout.toString()).toMatch(/: 8 passed, 0 failed, 0 skipped/);
      expect(probed.code, probed.stdout.toString()).toBe(0);

      const forced = await runCastore(
        CASTORE_CLI,
        ["conformance", server.url!, "--filter", "closure.", "--typed-errors"],
        {
          timeoutMs: 60_000,
        },
      );
      expect(forced.stdout.toString()).toMatch(/FAIL .*\[closure\.dangling-child\] .*expected ClosureError/);
      expect(forced.code).toBe(1);
    } finally {
      await server.close();
    }
  }, 120_000);

  it("a castore server proves typed errors by its trailer, so classes are checked", async () => {
    const served = await startCastoreServe(CASTORE_CLI, ["--listen", "127.0.0.1:0", "--store", "memory://"]);
    try {
      const r = await runCastore(CASTORE_CLI, ["conformance", served.url, "--filter", "closure."], {
        timeoutMs: 60_000,
      });
      expect(r.stdout.toString()).not.toMatch(/error classes not checked/);
      expect(r.code, r.stdout.toString()).toBe(0);
    } finally {
      await served.stop();
    }
  }, 120_000);

  it("a server that went away fails the scenarios, never passes them as rejections", async () => {
    const server = createDirectoryServiceServer(new MemoryDirectoryService(), {
      listen: { host: "127.0.0.1", port: 0 },
    });
    await server.listen();
    const url = server.url!;
    await server.close();
    const r = await runCastore(
      CASTORE_CLI,
      ["conformance", url, "--filter", "closure.dangling-child", "--no-typed-errors"],
      {
        timeoutMs: 60_000,
      },
    );
    expect(r.stdout.toString()).toMatch(
      /FAIL .*\[closure\.dangling-child\] .*failed because the server went away \(gRPC UNAVAILABLE/,
    );
    expect(r.code).toBe(1);
  }, 120_000);

  it("--json prints one report and --junit writes one testcase per scenario", async () => {
    const served = await startCastoreServe(CASTORE_CLI, ["--listen", "127.0.0.1:0", "--store", "memory://"]);
    const junit = join(dir, "conformance.xml");
    try {
      const r = await runCastore(
        CASTORE_CLI,
        ["conformance", served.url, "--filter", "uploads.", "--json", "--junit", junit],
        {
          timeoutMs: 60_000,
        },
      );
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout.toString());
      expect(report.target).toBe(served.url);
      expect(report.results.length).toBeGreaterThan(5);
      for (const res of report.results) {
        expect(Object.keys(res).sort()).toEqual(["id", "message", "ms", "status", "title"]);
        expect(res.id).toMatch(/^uploads\./);
      }
      expect(report.results[0]).toMatchObject({ id: "uploads.absent", status: "pass" });
      expect(report.passed + report.failed + report.skipped).toBe(report.results.length);
      expect(report.failed).toBe(0);

      const xml = readFileSync(junit, "utf8");
      const cases = [...xml.matchAll(/<testcase classname="([^"]*)" name="([^"]*)" time="[\d.]+"/g)];
      expect(cases.map((c) => c[2].split(":")[0])).toEqual(report.results.map((x: { id: string }) => x.id));
      expect(new Set(cases.map((c) => c[1]))).toEqual(new Set(["uploads"]));
      expect(xml).toMatch(
        new RegExp(
          `<testsuite name="[^"]*" tests="${report.results.length}" failures="0" errors="0" skipped="${report.skipped}"`,
        ),
      );
    } finally {
      await served.stop();
    }
  }, 120_000);
});
