/**
 * grpc.health.v1.Health for a castore server: SERVING while the backend
 * answers a cheap probe (a get, or a blob stat, of a fixed digest that is
 * never stored), NOT_SERVING while the probe throws a BackendError. The
 * DirectoryService names probe the directory backend, the BlobService names
 * the blob backend, and the server ("") both.
 */
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { BackendError, type BlobService, Digest, type DirectoryService } from "@castore-ts/core";
import { Health, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as Status } from "@castore-ts/proto";
import { CallSignal } from "./call-signal.js";

export const HealthStatus = Status;

/** Default interval between backend probes for Watch. */
export const DEFAULT_HEALTH_POLL_MS = 5_000;

/** A digest that is never a directory's (32 bytes of 0xff). */
const PROBE_DIGEST = Digest.fromBytes(new Uint8Array(32).fill(0xff));

export interface HealthOptions {
  /** Service names reported: "" (the server), and the castore services. */
  serviceNames: readonly ("tvix" | "snix")[];
  /** The blob backend, when the server serves the BlobService. */
  blobs?: BlobService;
  /** Watch polls the backend this often (ms). */
  pollMs?: number;
  /** Aborted when the server shuts down: Watch streams end. */
  shutdownSignal: AbortSignal;
}

/** Probes the backend: SERVING when it answers, NOT_SERVING when it throws a BackendError. */
export async function probeBackend(service: DirectoryService, signal?: AbortSignal): Promise<Status> {
  return probe(() => service.get(PROBE_DIGEST, { signal }), signal);
}

/** Probes a blob backend: a stat of a digest that is never stored. */
export async function probeBlobBackend(blobs: BlobService, signal?: AbortSignal): Promise<Status> {
  return probe(() => blobs.stat(PROBE_DIGEST, { signal }), signal);
}

async function probe(call: () => Promise<unknown>, signal: AbortSignal | undefined): Promise<Status> {
  try {
    await call();
    return Status.SERVING;
  } catch (e) {
    if (e instanceof BackendError) return Status.NOT_SERVING;
    if (signal?.aborted) throw e;
    return Status.NOT_SERVING;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Registers grpc.health.v1.Health on a connect router. */
export function healthRoutes(service: DirectoryService, opts: HealthOptions): (router: ConnectRouter) => void {
  const directories = (signal: AbortSignal) => probeBackend(service, signal);
  const { blobs } = opts;
  const blobStore = blobs && ((signal: AbortSignal) => probeBlobBackend(blobs, signal));
  const both = async (signal: AbortSignal) => {
    const d = await directories(signal);
    return d === Status.SERVING && blobStore ? blobStore(signal) : d;
  };
  const probes = new Map<string, (signal: AbortSignal) => Promise<Status>>([["", both]]);
  for (const n of opts.serviceNames) {
    probes.set(`${n}.castore.v1.DirectoryService`, directories);
    if (blobStore) probes.set(`${n}.castore.v1.BlobService`, blobStore);
  }
  const pollMs = opts.pollMs ?? DEFAULT_HEALTH_POLL_MS;
  return (router) =>
    router.service(Health, {
      async check(req, ctx: HandlerContext) {
        const probeOf = probes.get(req.service);
        if (!probeOf) throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
        return create(HealthCheckResponseSchema, { status: await probeOf(ctx.signal) });
      },
      async *watch(req, ctx: HandlerContext) {
        // The call's signal, or the shutdown's; connect aborts ctx.signal when
        // the call ends, which detaches the listener on the shutdown signal
        // (see call-signal.ts for why not AbortSignal.any).
        const call = new CallSignal().follow(ctx.signal).follow(opts.shutdownSignal);
        const { signal } = call;
        try {
          const probeOf = probes.get(req.service);
          if (!probeOf) {
            yield create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN });
            // Unknown services stay unknown: wait for the client or the shutdown.
            await sleep(2 ** 31 - 1, signal);
            return;
          }
          let last: Status | undefined;
          while (!signal.aborted) {
            let status: Status;
            try {
              status = await probeOf(signal);
            } catch {
              break;
            }
            if (signal.aborted) break;
            if (status !== last) {
              last = status;
              yield create(HealthCheckResponseSchema, { status });
            }
            await sleep(pollMs, signal);
          }
        } finally {
          call.end();
        }
      },
    });
}
