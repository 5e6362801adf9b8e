/**
 * The floor under `castore import` (not a test, not castore): the least a
 * Node program can do to store a tree's files by their BLAKE3 digest in an
 * LMDB file, run as a whole process by the trees benchmark beside
 * `castore import` and b3sum.
 *
 *   node dist/bare-import.js TREE STORE_DIRECTORY
 *
 * The main thread walks TREE (readdirSync) and sends its regular files, 64
 * paths a message, to two worker threads, which read each whole file
 * (readFileSync), hash it with core's BLAKE3 and answer with the digests and
 * the batch's bytes in one moved buffer; the main thread puts each file
 * into lmdb-js under its digest (an asynchronous put, `noOverwrite`: the
 * write thread copies the bytes) and awaits one flush at the end. No chunking,
 * no `has`, no "used" records, no directories, no progress, no checks: what
 * castore adds to this is its own cost, and b3sum's rate over this is the
 * runtime's share.
 */
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { open } from "lmdb";

const BATCH = 64;
/** Batches in flight per thread: one being read, one waiting (as castore's read pool keeps them busy). */
const IN_FLIGHT = 2;

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { readFileSync } = require("node:fs");
import(workerData.hashUrl).then(({ blake3 }) => {
  parentPort.on("message", ({ quit, paths }) => {
    if (quit) return parentPort.close();
    const files = paths.map((p) => readFileSync(p));
    const digests = new Uint8Array(32 * files.length);
    const sizes = new Float64Array(files.length);
    let total = 0;
    for (const f of files) total += f.length;
    const pack = Buffer.allocUnsafeSlow(total);
    let at = 0;
    files.forEach((f, i) => {
      digests.set(blake3(f), 32 * i);
      pack.set(f, at);
      sizes[i] = f.length;
      at += f.length;
    });
    parentPort.postMessage({ digests, sizes, pack: pack.buffer }, [digests.buffer, sizes.buffer, pack.buffer]);
  });
  parentPort.postMessage({ ready: true });
});
`;

/** Regular files under `root`, depth first. */
function* regularFiles(root: string): Generator<string> {
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    const path = join(root, entry.name);
    if (entry.isDirectory()) yield* regularFiles(path);
    else if (entry.isFile()) yield path;
  }
}

interface Answer {
  digests: Uint8Array;
  sizes: Float64Array;
  pack: ArrayBuffer;
}

async function main(tree: string, storeDirectory: string): Promise<void> {
  const env = open({ path: storeDirectory, keyEncoding: "binary", encoding: "binary" });
  const db = env.openDB<Uint8Array, Uint8Array>("files", { keyEncoding: "binary", encoding: "binary" });
  const put = db.put as unknown as (k: Uint8Array, v: Uint8Array, o: { noOverwrite: boolean }) => Promise<boolean>;
  const hashUrl = import.meta.resolve("@castore-ts/core/hash");
  const puts: Promise<boolean>[] = [];
  let stored = 0;

  const workers = [0, 1].map(() => {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { hashUrl } });
    const ready = new Promise<void>((resolve, reject) => {
      worker.once("message", () => resolve());
      worker.once("error", reject);
      // Ended before it was ready (a later exit settles nothing: the promise has resolved).
      worker.once("exit", (code) => reject(new Error(`a reading thread exited (${code}) before it was ready`)));
    });
    return { worker, ready, inFlight: 0 };
  });
  await Promise.all(workers.map((w) => w.ready));

  const files = regularFiles(tree);
  let walked = false;
  await new Promise<void>((resolve, reject) => {
    const send = (w: (typeof workers)[number]) => {
      while (w.inFlight < IN_FLIGHT && !walked) {
        const paths: string[] = [];
        for (let next = files.next(); !next.done; next = files.next()) {
          paths.push(next.value);
          if (paths.length === BATCH) break;
        }
        if (paths.length < BATCH) walked = true;
        if (paths.length === 0) break;
        w.inFlight++;
        w.worker.postMessage({ paths });
      }
      if (walked && workers.every((x) => x.inFlight === 0)) resolve();
    };
    for (const w of workers) {
      w.worker.on("error", reject);
      // A thread that ends with reads unanswered would leave the walk waiting forever.
      w.worker.on("exit", (code) => {
        if (w.inFlight > 0)
          reject(new Error(`a reading thread exited (${code}) with ${w.inFlight} batches unanswered`));
      });
      w.worker.on("message", ({ digests, sizes, pack }: Answer) => {
        w.inFlight--;
        let at = 0;
        for (let i = 0; i < sizes.length; i++) {
          const size = sizes[i]!;
          puts.push(
            put.call(db, digests.subarray(32 * i, 32 * i + 32), new Uint8Array(pack, at, size), { noOverwrite: true }),
          );
          at += size;
          stored++;
        }
        send(w);
      });
    }
    for (const w of workers) send(w);
  });
  await Promise.all(puts);
  await env.flushed;
  for (const w of workers) w.worker.postMessage({ quit: true });
  await env.close();
  process.stdout.write(`${stored}\n`);
}

const [tree, storeDirectory] = process.argv.slice(2);
if (!tree || !storeDirectory) {
  process.stderr.write("usage: bare-import.js TREE STORE_DIRECTORY\n");
  process.exit(2);
}
await main(tree, storeDirectory);
