/**
 * Test fixtures: a Map-backed DirectoryStore under core's
 * StoreDirectoryService, and a server + client pair over TCP or a Unix socket.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ClosureError, type Digest, type DirectoryStore, StoreDirectoryService } from "@castore-ts/core";
import type { ClosureEntry } from "@castore-ts/core";
import { GrpcDirectoryService, type GrpcDirectoryServiceOptions } from "./grpc-directory-service.js";
import {
  createDirectoryServiceServer,
  type DirectoryServiceServer,
  type DirectoryServiceServerOptions,
} from "./server.js";

export class MapDirectoryStore implements DirectoryStore {
  readonly backend = "test-memory";
  /** It deletes nothing, so a partial upload's stored children need only be there at commit. */
  readonly partialUploads: boolean = true;
  readonly map = new Map<string, Uint8Array>();
  putClosureCalls = 0;
  closed = false;

  async getMany(digests: Digest[]): Promise<(Uint8Array | undefined)[]> {
    return digests.map((d) => this.map.get(d.hex));
  }

  async putClosure(entries: ClosureEntry[], _signal?: AbortSignal, external: readonly Digest[] = []): Promise<void> {
    const missing = external.find((d) => !this.map.has(d.hex));
    if (missing)
      throw new ClosureError(`partial upload refers to directory ${missing.hex}, which the store does not hold`);
    this.putClosureCalls++;
    for (const e of entries) this.map.set(e.digest.hex, e.bytes);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Stores bytes under a digest they do not hash to. */
  corrupt(digest: Digest, bytes: Uint8Array): void {
    this.map.set(digest.hex, bytes);
  }
}

export function memoryService(): { store: MapDirectoryStore; service: StoreDirectoryService } {
  const store = new MapDirectoryStore();
  return { store, service: new StoreDirectoryService(store) };
}

export function tempSocketPath(): { dir: string; socket: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "castore-grpc-"));
  return { dir, socket: path.join(dir, "socket") };
}

export interface Harness {
  server: DirectoryServiceServer;
  client: GrpcDirectoryService;
  store: MapDirectoryStore;
  service: StoreDirectoryService;
  close(): Promise<void>;
}

/** A memory-backed server and a client connected to it, over "tcp" or "unix". */
export async function startHarness(
  transport: "tcp" | "unix",
  serverOpts: Partial<DirectoryServiceServerOptions> = {},
  clientOpts: GrpcDirectoryServiceOptions = {},
): Promise<Harness> {
  const { store, service } = memoryService();
  const tmp = transport === "unix" ? tempSocketPath() : undefined;
  const server = createDirectoryServiceServer(service, {
    listen: tmp ? { path: tmp.socket } : { host: "127.0.0.1", port: 0 },
    ...serverOpts,
  });
  await server.listen();
  const client = GrpcDirectoryService.fromUrl(server.url!, clientOpts);
  return {
    server,
    client,
    store,
    service,
    async close() {
      await client.close();
      await server.close({ deadlineMs: 1000 });
      if (tmp) fs.rmSync(tmp.dir, { recursive: true, force: true });
    },
  };
}
