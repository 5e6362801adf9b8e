/**
 * `castore conformance` against a server castore did not write:
 * reference/python/server.py, a tvix.castore.v1 DirectoryService in Python
 * (grpcio, its own BLAKE3), that sends no castore-error-code trailer.
 *
 * Each variant of that server runs in a child process; the real command
 * (`castore conformance grpc+http://127.0.0.1:PORT --json`, the built CLI) runs
 * against it in another. Both correct variants (rejections as INVALID_ARGUMENT,
 * and as INTERNAL like tvix) must pass with no failure; each injected defect
 * must fail exactly the scenarios listed in DEFECTS, by id, in a run without
 * the large-tree scenarios (--skip scale.: they take three quarters of a run,
 * and the correct variants run them).
 *
 * Needs /usr/bin/python3 (or $CASTORE_REFERENCE_PYTHON) with Debian's
 * python3-grpcio, python3-grpc-tools and python3-protobuf, and b3sum
 * (.ci/lib/python.sh installs them). Without them the tests fail under CI and
 * are skipped, saying why, elsewhere.
 *
 * When the suite gains or changes a scenario, a defect's set may change: run
 *   /usr/bin/python3 reference/python/server.py --defect NAME
 *   castore conformance grpc+http://127.0.0.1:PORT --json --skip scale.
 * and check that each new failure is one the defect explains before updating DEFECTS.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it, type TestContext } from "vitest";
import { scenarios } from "@castore-ts/conformance";
import { runCastore } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const REFERENCE_DIR = join(REPO_ROOT, "reference/python");
const PYTHON = process.env.CASTORE_REFERENCE_PYTHON ?? "/usr/bin/python3";
/** Variants run two at a time (the machine has 2 cores; each run keeps a server and a client busy). */
const PARALLEL_RUNS = 2;
const RUN_TIMEOUT_MS = 300_000;
/** What the defect variants leave out: the large trees, which only repeat what smaller scenarios show. */
const DEFECT_RUN_SKIPS = ["scale."];

/** Why the reference server cannot run here, or undefined when it can. */
function pythonMissing(): string | undefined {
  const probe = spawnSync(PYTHON, ["-c", "import grpc, grpc_tools.protoc, google.protobuf"], { encoding: "utf8" });
  if (probe.error) return `${PYTHON} cannot run (${probe.error.message})`;
  if (probe.status !== 0) {
    const why = probe.stderr.trim().split("\n").pop();
    return (
      `${PYTHON} cannot import grpc, grpc_tools and google.protobuf (${why}); ` +
      "install python3-grpcio python3-grpc-tools python3-protobuf b3sum (.ci/lib/python.sh does)"
    );
  }
  return undefined;
}
const MISSING = pythonMissing();

function requirePython(ctx: TestContext): void {
  if (MISSING === undefined) return;
  if (process.env.CI) throw new Error(`CI must run the independent reference server, but ${MISSING}`);
  ctx.skip(`the reference server cannot run: ${MISSING}`);
}

interface ReferenceServer {
  url: string;
  stop(): Promise<void>;
}

/** Starts reference/python/server.py ARGS… from the repository root, and resolves once it prints its port. */
function startReference(args: string[]): Promise<ReferenceServer> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(PYTHON, ["reference/python/server.py", ...args], {
      cwd: REPO_ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const exited = new Promise<void>((res) => child.once("exit", () => res()));
    child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
    child.stdout!.on("data", (c: Buffer) => {
      stdout += c.toString();
      const m = /^(\d+)\n/.exec(stdout);
      if (m) {
        resolve({
          url: `grpc+http://127.0.0.1:${m[1]}`,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
            await exited;
          },
        });
      }
    });
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`server.py ${args.join(" ")} exited with ${code}: ${stderr}`)));
  });
}

/** The JSON report of `castore conformance --json` (packages/cli/src/conformance/report-formats.ts). */
interface JsonReport {
  target: string;
  results: { id: string; title: string; status: "pass" | "fail" | "skip"; message: string | null; ms: number }[];
  passed: number;
  failed: number;
  skipped: number;
}

interface VariantRun {
  report: JsonReport;
  exitCode: number | null;
  /** The ids of the failed scenarios, sorted. */
  failing: string[];
}

function limitConcurrency(n: number): <T>(job: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (job) => {
    while (active >= n) await new Promise<void>((wake) => waiting.push(wake));
    active++;
    try {
      return await job();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}
const inTurn = limitConcurrency(PARALLEL_RUNS);

/**
 * Starts the server with `serverArgs`, then runs `castore conformance URL
 * castoreArgs…` (default --json) in `cwd`; stdout must be the JSON report.
 */
function runVariant(serverArgs: string[], castoreArgs = ["--json"], cwd?: string): Promise<VariantRun> {
  return inTurn(async () => {
    const server = await startReference(serverArgs);
    try {
      const run = await runCastore(CASTORE_BIN, ["conformance", server.url, ...castoreArgs], {
        cwd,
        timeoutMs: RUN_TIMEOUT_MS,
      });
      const text = run.stdout.toString("utf8");
      let report: JsonReport;
      try {
        report = JSON.parse(text) as JsonReport;
      } catch {
        throw new Error(`castore conformance printed no JSON report (exit ${run.code}): ${text}\n${run.stderr}`);
      }
      const failing = report.results
        .filter((r) => r.status === "fail")
        .map((r) => r.id)
        .sort();
      return { report, exitCode: run.code, failing };
    } finally {
      await server.stop();
    }
  });
}

/**
 * What `castore conformance URL` skips against this server: no fault
 * injection, no listDigests, order not pinned to BFS, every blob.* and
 * refs.* scenario (the reference server implements the DirectoryService
 * only: its UNIMPLEMENTED answers to the probes skip them), and every gc.*
 * scenario (a store tested by URL is shared: no collection runs on it).
 */
const SKIPPED = [
  ...scenarios.filter((s) => ["blob.", "refs.", "gc."].some((p) => s.id.startsWith(p))).map((s) => s.id),
  // The reference server has no castore.sync.v1: no partial uploads (partial.find-missing runs on plain Gets).
  ...scenarios.filter((s) => s.requires.includes("partialUpload")).map((s) => s.id),
  "corruption.non-canonical",
  "corruption.repair",
  "corruption.wrong-digest",
  "order.breadth-first",
  "uploads.list-digests",
].sort();

/** Every scenario outside scale.* that uploads a tree, checks the root close() returns and reads the closure back. */
const ROUND_TRIPS = [
  "abort.already-aborted",
  "abort.early-stop",
  "abort.get-recursive",
  "closing.abort-during-close",
  "closing.close-twice-concurrent",
  "closing.put-during-close",
  "closure.legacy-sizes", // uploads the legacy-sized tree and reads it back
  "isolation.mutate-after-put",
  "names.non-utf8",
  "order.root-to-leaves",
  "uploads.duplicate",
  "uploads.get-non-root",
  "uploads.idempotent",
  "uploads.in-progress-invisible",
  "uploads.leaves-to-root",
  "uploads.resend",
  "validation.limits-accepted",
];

interface DefectExpectation {
  /** The exact set of failing scenario ids. */
  failing: string[];
  /** One scenario whose message must say what is wrong. */
  headline: { id: string; message: RegExp };
}

/**
 * Each --defect of server.py, the scenarios it must fail, and what the
 * headline failure says. Broken recursive reads fail every scenario that
 * reads a closure back (ROUND_TRIPS), plus the few whose clean-up check
 * reads one (closure.disconnected, isolation.mutate-returned, …).
 */
const DEFECTS: Record<string, DefectExpectation> = {
  "children-first": {
    failing: [...ROUND_TRIPS, "closure.disconnected", "isolation.mutate-returned"],
    headline: { id: "order.root-to-leaves", message: /not referred to by any directory received before it/ },
  },
  "drop-child": {
    failing: [...ROUND_TRIPS, "closure.disconnected", "isolation.mutate-returned"],
    headline: { id: "uploads.leaves-to-root", message: /premature end of stream below root/ },
  },
  "corrupt-get": {
    failing: [
      ...ROUND_TRIPS,
      "abort.upload",
      "abort.upload-signal",
      "closure.disconnected",
      "closure.parent-before-child",
      "isolation.mutate-returned",
      "names.traversal",
      "partial.find-missing", // has() falls back to a Get each there
      "uploads.empty-and-closed",
      "uploads.leaf-entries",
    ],
    headline: {
      id: "uploads.leaf-entries",
      message: /CorruptionError .*requested directory [0-9a-f]{64}, but received/,
    },
  },
  "wrong-root": {
    failing: [...ROUND_TRIPS, "names.traversal", "partial.find-missing"],
    headline: { id: "uploads.leaves-to-root", message: /close\(\) returned A=af1349b9\w+, expected B=8701f472/ },
  },
  "duplicate-subtree": {
    // Only trees that share a subtree: D (A twice), C (A twice), the wide directory's repeated children.
    failing: [
      "closing.abort-during-close",
      "closing.close-twice-concurrent",
      "closure.disconnected",
      "order.root-to-leaves",
      "uploads.duplicate",
      "uploads.idempotent",
      "uploads.in-progress-invisible",
      "uploads.resend",
    ],
    headline: {
      id: "uploads.duplicate",
      message: /received unexpected directory af1349b9\w+ below root \w+: sent twice/,
    },
  },
  "get-ignores-recursive": {
    failing: [
      "abort.early-stop",
      "abort.get-recursive",
      "abort.upload",
      "abort.upload-signal",
      "closing.put-during-close",
      "closure.disconnected",
      "closure.legacy-sizes",
      "closure.parent-before-child",
      "isolation.mutate-after-put",
      "isolation.mutate-returned",
      "names.non-utf8",
      "names.traversal",
      "partial.find-missing",
      "uploads.empty-and-closed",
      "uploads.get-non-root",
      "uploads.in-progress-invisible",
      "validation.limits-accepted",
    ],
    headline: { id: "uploads.get-non-root", message: /more than one directory in the answer to a non-recursive Get/ },
  },
  "accept-dangling": {
    failing: ["closure.dangling-child", "closure.parent-before-child", "closure.put-child-alone"],
    headline: { id: "closure.dangling-child", message: /upload \[B\] succeeded .*expected it to fail/ },
  },
  "accept-disconnected": {
    failing: ["closure.disconnected"],
    headline: { id: "closure.disconnected", message: /upload \[A, C, B\] succeeded .*expected it to fail/ },
  },
  "no-size-check": {
    failing: ["closure.size-too-large", "closure.size-too-small", "closure.wrong-size"],
    headline: { id: "closure.wrong-size", message: /upload \[A, BROKEN\] succeeded .*expected it to fail/ },
  },
  "accept-unsorted": {
    failing: ["validation.names-sorted"],
    headline: { id: "validation.names-sorted", message: /put\(files \[b, a\]\) succeeded .*expected it to fail/ },
  },
  "accept-bad-names": {
    failing: ["validation.names"],
    headline: { id: "validation.names", message: /put\(a file named ''\) succeeded .*expected it to fail/ },
  },
  "accept-bad-targets": {
    failing: ["validation.symlink-targets"],
    headline: {
      id: "validation.symlink-targets",
      message: /put\(an empty symlink target\) succeeded .*expected it to fail/,
    },
  },
};

/**
 * The commands of packages/conformance/README.md's "Testing a server written
 * in another language": the server's arguments, and the conformance command's
 * arguments after its URL (whose port must be the one the server printed).
 */
function readmeCommands(): { serverArgs: string[]; castoreArgs: string[]; jsonFile: string } {
  const readme = readFileSync(join(REPO_ROOT, "packages/conformance/README.md"), "utf8");
  const section = readme.split("\n## Testing a server written in another language\n")[1]?.split("\n## ")[0];
  const block = section && /```console\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block)
    throw new Error("packages/conformance/README.md has no console block under its 'Testing a server…' heading");
  const lines = block.trimEnd().split("\n");
  const serverAt = lines.findIndex((l) => l.startsWith("$ /usr/bin/python3 reference/python/server.py"));
  const server = /^\$ \/usr\/bin\/python3 reference\/python\/server\.py((?: \S+)*) &$/.exec(lines[serverAt] ?? "");
  const printedPort = lines[serverAt + 1];
  const castore = /^\$ pnpm castore conformance grpc\+http:\/\/127\.0\.0\.1:(\d+)((?: \S+)*) > (\S+)$/.exec(
    lines[serverAt + 2] ?? "",
  );
  if (!server || !castore || !/^\d+$/.test(printedPort ?? "") || castore[1] !== printedPort) {
    throw new Error(`the README's commands changed shape; update this parser with them:\n${block}`);
  }
  return {
    serverArgs: server[1].split(" ").filter(Boolean),
    castoreArgs: castore[2].split(" ").filter(Boolean),
    jsonFile: castore[3],
  };
}

describe("the independent reference server (reference/python)", () => {
  it("blake3.py agrees with the official test vectors and with b3sum", (ctx) => {
    requirePython(ctx);
    const run = spawnSync(PYTHON, ["-m", "unittest", "-v", "test_blake3"], { cwd: REFERENCE_DIR, encoding: "utf8" });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/Ran 2 tests/);
    expect(run.stderr).not.toMatch(/skipped/);
  });

  it("server.py offers exactly the defects this test checks", (ctx) => {
    requirePython(ctx);
    const run = spawnSync(PYTHON, ["-c", "import server; print('\\n'.join(sorted(server.DEFECTS)))"], {
      cwd: REFERENCE_DIR,
      encoding: "utf8",
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout.trim().split("\n")).toEqual(Object.keys(DEFECTS).sort());
  });

  /** Checks a correct variant's run: no failure, only the skips every URL target has. */
  function expectAllPass({ report, exitCode, failing }: VariantRun): void {
    const messages = report.results.filter((r) => r.status === "fail").map((r) => `[${r.id}] ${r.message}`);
    expect(failing, messages.join("\n")).toEqual([]);
    expect(exitCode).toBe(0);
    expect(report.failed).toBe(0);
    const skipped = report.results.filter((r) => r.status === "skip").map((r) => r.id);
    expect(skipped.sort()).toEqual(SKIPPED);
    expect(report.passed).toBe(report.results.length - SKIPPED.length);
  }

  it.concurrent(
    "correct, rejecting with INVALID_ARGUMENT: packages/conformance/README.md's commands pass, JSON and JUnit",
    async (ctx) => {
      requirePython(ctx);
      const { serverArgs, castoreArgs, jsonFile } = readmeCommands();
      const dir = mkdtempSync(join(tmpdir(), "castore-reference-"));
      try {
        const run = await runVariant(serverArgs, castoreArgs, dir);
        expectAllPass(run);
        const junitFile = castoreArgs[castoreArgs.indexOf("--junit") + 1];
        const xml = readFileSync(join(dir, junitFile), "utf8");
        expect(xml.match(/<testcase /g)).toHaveLength(run.report.results.length);
        expect(xml).toContain(`failures="0" errors="0" skipped="${SKIPPED.length}"`);
        expect(jsonFile).toMatch(/\.json$/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    RUN_TIMEOUT_MS * 3,
  );

  it.concurrent(
    "correct, rejecting with INTERNAL (as tvix): every scenario passes",
    async (ctx) => {
      requirePython(ctx);
      expectAllPass(await runVariant(["--reject-status", "INTERNAL"]));
    },
    RUN_TIMEOUT_MS * 3,
  );

  for (const [defect, expected] of Object.entries(DEFECTS)) {
    it.concurrent(
      `--defect ${defect}: fails exactly ${expected.failing.length} scenario(s), ${expected.headline.id} among them`,
      async (ctx) => {
        requirePython(ctx);
        const skips = DEFECT_RUN_SKIPS.flatMap((prefix) => ["--skip", prefix]);
        const { report, exitCode, failing } = await runVariant(["--defect", defect], ["--json", ...skips]);
        expect(exitCode).toBe(1);
        expect(report.results.filter((r) => DEFECT_RUN_SKIPS.some((p) => r.id.startsWith(p)))).toEqual([]);
        expect(failing).toEqual([...expected.failing].sort());
        expect(report.failed).toBe(expected.failing.length);
        const headline = report.results.find((r) => r.id === expected.headline.id);
        expect(headline?.message).toMatch(expected.headline.message);
        // Every report line names its scenario by id.
        expect(headline?.message).toContain(`[${expected.headline.id}]`);
      },
      RUN_TIMEOUT_MS * 3,
    );
  }
});
