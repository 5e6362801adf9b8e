/**
 * gRPC backend benchmark: upload (one Put) and getRecursive of a
 * 100 000-directory tree through GrpcDirectoryService → loopback TCP →
 * createDirectoryServiceServer → memory, against the same on an in-process
 * memory service in the same run.
 *
 *   pnpm --filter @castore/backend-grpc bench      (node dist/bench.js)
 *   CASTORE_BENCH_DIRECTORIES=20000 CASTORE_BENCH_ROUNDS=2 … for a quick run
 *
 * The server runs in a worker thread (its own event loop, as a server
 * process would); a second measure puts it on the client's own event loop,
 * where client and server share one core's worth of JavaScript. Results go
 * to bench-results.json through @castore/conformance's shared writer.
 */
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { MemoryDirectoryService } from "@castore/backend-memory";
import { type BenchResult, benchResult, generateTree, recordBenchResults } from "@castore/conformance";
import type { DirectoryService } from "@castore/core";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import { createDirectoryServiceServer } from "./server.js";

interface WorkerMessage {
  url?: string;
  closed?: boolean;
}

async function serveInWorker(): Promise<void> {
  const server = createDirectoryServiceServer(new MemoryDirectoryService(), { listen: { host: "127.0.0.1", port: 0 } });
  await server.listen();
  parentPort!.postMessage({ url: server.url } satisfies WorkerMessage);
  parentPort!.once("message", async () => {
    await server.close({ deadlineMs: 1000 });
    parentPort!.postMessage({ closed: true } satisfies WorkerMessage);
  });
}

async function main(): Promise<void> {
  const COUNT = Number(process.env.CASTORE_BENCH_DIRECTORIES ?? 100_000);
  const ROUNDS = Number(process.env.CASTORE_BENCH_ROUNDS ?? 3);
  const label = COUNT === 100_000 ? "100k" : String(COUNT);

  const tree = generateTree({ directories: COUNT, seed: 5 });
  console.log(
    `tree: ${COUNT} directories, ${(tree.encodedBytes / 2 ** 20).toFixed(1)} MiB canonical ` +
      `(mean ${(tree.encodedBytes / COUNT).toFixed(0)} bytes); ${ROUNDS} rounds, best kept`,
  );

  interface Opened {
    service: DirectoryService;
    dispose(): Promise<void>;
  }

  async function openMemory(): Promise<Opened> {
    const service = new MemoryDirectoryService();
    return { service, dispose: () => service.close() };
  }

  /** Server in a worker thread, client here. */
  async function openRemote(): Promise<Opened> {
    const worker = new Worker(new URL(import.meta.url), { workerData: { role: "server" } });
    const url = await new Promise<string>((resolve, reject) => {
      worker.once("error", reject);
      worker.once("message", (m: WorkerMessage) => resolve(m.url!));
    });
    const service = GrpcDirectoryService.fromUrl(url);
    return {
      service,
      async dispose() {
        await service.close();
        const closed = new Promise((resolve) => worker.once("message", resolve));
        worker.postMessage("close");
        await closed;
        await worker.terminate();
      },
    };
  }

  /** Server and client on this one event loop. */
  async function openSameThread(): Promise<Opened> {
    const server = createDirectoryServiceServer(new MemoryDirectoryService(), { listen: { host: "127.0.0.1", port: 0 } });
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

  async function upload(service: DirectoryService): Promise<number> {
    const start = performance.now();
    const putter = service.putMultipleStart();
    for (const d of tree.directories) await putter.put(d);
    const root = await putter.close();
    if (!root.equals(tree.root)) throw new Error(`upload returned ${root}, expected ${tree.root}`);
    return (performance.now() - start) / 1000;
  }

  async function walk(service: DirectoryService): Promise<number> {
    const start = performance.now();
    let n = 0;
    for await (const _ of service.getRecursive(tree.root)) n++;
    if (n !== COUNT) throw new Error(`getRecursive yielded ${n} directories, expected ${COUNT}`);
    return (performance.now() - start) / 1000;
  }

  interface Rates {
    upload: number;
    walk: number;
  }
  const zero = (): Rates => ({ upload: 0, walk: 0 });

  /** Best rates: a fresh store per round, uploaded once, then walked twice. */
  async function measure(open: () => Promise<Opened>, best: Rates): Promise<void> {
    const { service, dispose } = await open();
    try {
      best.upload = Math.max(best.upload, COUNT / (await upload(service)));
      for (let i = 0; i < 2; i++) best.walk = Math.max(best.walk, COUNT / (await walk(service)));
    } finally {
      await dispose();
    }
  }

  const memory = zero();
  const remote = zero();
  const sameThread = zero();
  // One unrecorded round of each warms up the JIT; then rounds interleave so drift hits all alike.
  await measure(openMemory, zero());
  await measure(openRemote, zero());
  for (let r = 0; r < ROUNDS; r++) {
    await measure(openMemory, memory);
    await measure(openRemote, remote);
    await measure(openSameThread, sameThread);
  }

  const results: BenchResult[] = [
    benchResult(`grpc: upload ${label} directories over loopback TCP vs in-process memory`, remote.upload, "directories/s", memory.upload),
    benchResult(`grpc: getRecursive ${label} directories over loopback TCP vs in-process memory`, remote.walk, "directories/s", memory.walk),
    benchResult(
      `grpc: upload ${label} directories, server on the client's thread, vs in-process memory`,
      sameThread.upload,
      "directories/s",
      memory.upload,
    ),
    benchResult(
      `grpc: getRecursive ${label} directories, server on the client's thread, vs in-process memory`,
      sameThread.walk,
      "directories/s",
      memory.walk,
    ),
  ];
  const file = recordBenchResults(results);
  for (const r of results) {
    const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
    console.log(`${r.name}: ${fmt(r.value)} ${r.unit}` + (r.ratio === null ? "" : ` (baseline ${fmt(r.baseline!)}, ratio ${r.ratio.toFixed(3)})`));
  }
  console.log(`recorded in ${file}`);
}

if (isMainThread) {
  await main();
} else if ((workerData as { role?: string })?.role === "server") {
  await serveInWorker();
}
