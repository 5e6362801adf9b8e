/**
 * gRPC backend benchmark: upload (one Put) and getRecursive of a
 * 100 000-directory tree through GrpcDirectoryService → loopback TCP →
 * createDirectoryServiceServer → memory, against the same on an in-process
 * memory service in the same run.
 *
 *   pnpm bench grpc      (root; in packages/bench: node dist/grpc.js)
 *   CASTORE_BENCH_DIRECTORIES=20000 CASTORE_BENCH_ROUNDS=2 … for a quick run
 *
 * The server runs in a child process, as a server would; a second measure
 * puts it on the client's own event loop, where client and server share one
 * core's worth of JavaScript. Wall-clock rates depend on what else the
 * machine runs, so the CPU time of each side is measured too (the child's
 * from /proc on Linux): "CPU-bound rate" is 1 / (the slower side's CPU time
 * per directory), the rate with a core for each side. Results go to
 * bench-results.json through the shared writer.
 */
import { type ChildProcess, fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  createDirectoryServiceServer,
  type DirectoryServiceServer,
  GrpcDirectoryService,
} from "@castore-ts/backend-grpc";
import { MemoryDirectoryService } from "@castore-ts/backend-memory";
import { generateTree } from "@castore-ts/conformance";
import type { DirectoryService } from "@castore-ts/core";
import { type BenchResult, benchResult, recordBenchResults } from "./results.js";

/**
 * The server side, in a child process that lives for the whole run (its JIT
 * warms up like the in-process baseline's): "open" starts a server on a
 * fresh memory store and answers its URL, "close" stops it.
 */
function serveForParent(): void {
  let server: DirectoryServiceServer | undefined;
  process.on("message", async (message: string) => {
    if (message === "open") {
      server = createDirectoryServiceServer(new MemoryDirectoryService(), { listen: { host: "127.0.0.1", port: 0 } });
      await server.listen();
      process.send!({ url: server.url });
    } else if (message === "close") {
      await server?.close({ deadlineMs: 1000 });
      process.send!({ closed: true });
    } else if (message === "exit") {
      process.exit(0);
    }
  });
}

/** CPU time (user + system) of a child process in µs, from /proc; undefined where there is none. */
function childCpuMicros(child: ChildProcess): number | undefined {
  try {
    const fields = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1].split(" ");
    const ticksPerSecond = 100; // USER_HZ on Linux
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / ticksPerSecond;
  } catch {
    return undefined;
  }
}

async function main(): Promise<void> {
  const COUNT = Number(process.env.CASTORE_BENCH_DIRECTORIES ?? 100_000);
  const ROUNDS = Number(process.env.CASTORE_BENCH_ROUNDS ?? 3);
  const labelCount = COUNT === 100_000 ? "100k" : String(COUNT);

  const tree = generateTree({ directories: COUNT, seed: 5 });
  console.log(
    `tree: ${COUNT} directories, ${(tree.encodedBytes / 2 ** 20).toFixed(1)} MiB canonical ` +
      `(mean ${(tree.encodedBytes / COUNT).toFixed(0)} bytes); ${ROUNDS} rounds, best kept`,
  );

  interface Opened {
    service: DirectoryService;
    /** CPU µs the server side used so far, when it runs elsewhere and that can be read. */
    serverCpu?(): number | undefined;
    dispose(): Promise<void>;
  }

  async function openMemory(): Promise<Opened> {
    const service = new MemoryDirectoryService();
    return { service, dispose: () => service.close() };
  }

  const child = fork(fileURLToPath(import.meta.url), ["--serve"], { stdio: "inherit" });
  const ask = (message: string) =>
    new Promise<{ url?: string }>((resolve, reject) => {
      child.once("message", resolve);
      child.once("error", reject);
      child.send(message);
    });

  /** Server in the child process, client here. */
  async function openRemote(): Promise<Opened> {
    const { url } = await ask("open");
    const service = GrpcDirectoryService.fromUrl(url!);
    return {
      service,
      serverCpu: () => childCpuMicros(child),
      async dispose() {
        await service.close();
        await ask("close");
      },
    };
  }

  /** Server and client on this one event loop. */
  async function openSameThread(): Promise<Opened> {
    const server = createDirectoryServiceServer(new MemoryDirectoryService(), {
      listen: { host: "127.0.0.1", port: 0 },
    });
    await server.listen();
    const service = GrpcDirectoryService.fromUrl(server.url!);
    return {
      service,
      async dispose() {
        await service.close();
        await server.close({ deadlineMs: 1000 });
      },
    };
  }

  async function upload(service: DirectoryService): Promise<void> {
    const putter = service.putMultipleStart();
    for (const d of tree.directories) await putter.put(d);
    const root = await putter.close();
    if (!root.equals(tree.root)) throw new Error(`upload returned ${root}, expected ${tree.root}`);
  }

  async function walk(service: DirectoryService): Promise<void> {
    let n = 0;
    for await (const _ of service.getRecursive(tree.root)) n++;
    if (n !== COUNT) throw new Error(`getRecursive yielded ${n} directories, expected ${COUNT}`);
  }

  interface Measure {
    /** directories/s, wall clock */
    rate: number;
    /** CPU µs per directory in this process (the client, or everything for in-process runs) */
    cpu: number;
    /** CPU µs per directory of the server process, when it is one */
    serverCpu?: number;
  }
  interface Best {
    upload?: Measure;
    walk?: Measure;
  }

  async function timed(opened: Opened, op: (s: DirectoryService) => Promise<void>): Promise<Measure> {
    const server0 = opened.serverCpu?.();
    const cpu0 = process.cpuUsage();
    const start = performance.now();
    await op(opened.service);
    const seconds = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const server1 = opened.serverCpu?.();
    return {
      rate: COUNT / seconds,
      cpu: (cpu.user + cpu.system) / COUNT,
      serverCpu: server0 !== undefined && server1 !== undefined ? (server1 - server0) / COUNT : undefined,
    };
  }

  const better = (a: Measure | undefined, b: Measure) => (a === undefined || b.rate > a.rate ? b : a);
  /** Best rates: a fresh store per round, uploaded once, then walked twice. */
  async function measure(open: () => Promise<Opened>, best: Best): Promise<void> {
    const opened = await open();
    try {
      best.upload = better(best.upload, await timed(opened, upload));
      for (let i = 0; i < 2; i++) best.walk = better(best.walk, await timed(opened, walk));
    } finally {
      await opened.dispose();
    }
  }

  const memory: Best = {};
  const remote: Best = {};
  const sameThread: Best = {};
  // One unrecorded round of each warms up the JIT; then rounds interleave so drift hits all alike.
  await measure(openMemory, {});
  await measure(openRemote, {});
  for (let r = 0; r < ROUNDS; r++) {
    await measure(openMemory, memory);
    await measure(openRemote, remote);
    await measure(openSameThread, sameThread);
  }

  child.send("exit");

  /** The rate with a core for each side: the slower side's CPU time per directory. */
  const cpuBound = (m: Measure) => 1e6 / Math.max(m.cpu, m.serverCpu ?? 0);
  const ops = [
    ["upload", "upload"],
    ["walk", "getRecursive"],
  ] as const;
  const results: BenchResult[] = [];
  for (const [op, label] of ops) {
    const base = memory[op]!;
    const rem = remote[op]!;
    results.push(
      benchResult(
        `grpc: ${label} ${labelCount} directories over loopback TCP vs in-process memory`,
        rem.rate,
        "directories/s",
        base.rate,
      ),
      benchResult(
        `grpc: ${label} ${labelCount} directories, server on the client's thread, vs in-process memory`,
        sameThread[op]!.rate,
        "directories/s",
        base.rate,
      ),
    );
    if (rem.serverCpu !== undefined) {
      results.push(
        benchResult(
          `grpc: ${label} ${labelCount} directories over loopback TCP, CPU-bound rate (a core per side) vs in-process memory`,
          cpuBound(rem),
          "directories/s",
          cpuBound(base),
        ),
      );
      console.log(
        `${label}: CPU µs per directory: in-process ${base.cpu.toFixed(1)}; remote client ${rem.cpu.toFixed(1)}, server ${rem.serverCpu.toFixed(1)}`,
      );
    }
  }
  const file = recordBenchResults(results);
  for (const r of results) {
    const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
    console.log(
      `${r.name}: ${fmt(r.value)} ${r.unit}` +
        (r.ratio === null ? "" : ` (baseline ${fmt(r.baseline!)}, ratio ${r.ratio.toFixed(3)})`),
    );
  }
  console.log(`recorded in ${file}`);
}

if (process.argv.includes("--serve")) serveForParent();
else await main();
