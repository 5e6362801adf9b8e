/**
 * grpc.health.v1.Health for a castore server: SERVING while the backend
 * answers a cheap probe (a get of a fixed digest that is never stored),
 * NOT_SERVING while the probe throws a BackendError.
 */
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { BackendError, Digest, type DirectoryService } from "@castore-ts/core";
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
  /** Watch polls the backend this often (ms). */
  pollMs?: number;
  /** Aborted when the server shuts down: Watch streams end. */
  shutdownSignal: AbortSignal;
}

/** Probes the backend: SERVING when it answers, NOT_SERVING when it throws a BackendError. */
export async function probeBackend(service: DirectoryService, signal?: AbortSignal): Promise<Status> {
  try {
    await service.get(PROBE_DIGEST, { signal });
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
  const known = new Set<string>(["", ...opts.serviceNames.map((n) => `${n}.castore.v1.DirectoryService`)]);
  const pollMs = opts.pollMs ?? DEFAULT_HEALTH_POLL_MS;
  return (router) =>
    router.service(Health, {
      async check(req, ctx: HandlerContext) {
        if (!known.has(req.service))
          throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
        return create(HealthCheckResponseSchema, { status: await probeBackend(service, ctx.signal) });
      },
      async *watch(req, ctx: HandlerContext) {
        // The call's signal, or the shutdown's; connect aborts ctx.signal when
        // the call ends, which detaches the listener on the shutdown signal
        // (see call-signal.ts for why not AbortSignal.any).
        const call = new CallSignal().follow(ctx.signal).follow(opts.shutdownSignal);
        const { signal } = call;
        try {
          if (!known.has(req.service)) {
            yield create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN });
            // Unknown services stay unknown: wait for the client or the shutdown.
            await sleep(2 ** 31 - 1, signal);
            return;
          }
          let last: Status | undefined;
          while (!signal.aborted) {
            let status: Status;
            try {
              status = await probeBackend(service, signal);
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
