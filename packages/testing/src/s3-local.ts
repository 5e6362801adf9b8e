import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}

async function loadS3rver(): Promise<
  new (options: { address: string; port: number; directory: string; silent: boolean }) => S3rverInstance
> {
  // Loaded on demand (koa, winston, ...): the in-process fallback is its only user.
  return (await import("s3rver")).default;
}

/**
 * s3rver running inside the test process on a loopback port, buckets in a
 * temporary folder: the fallback when no container runtime is reachable.
 */
export class LocalS3rver {
  private instance: S3rverInstance | undefined;

  private constructor(
    readonly directory: string,
    private currentPort: number,
  ) {}

  get port(): number {
    return this.currentPort;
  }

  static async start(options: { port?: number } = {}): Promise<LocalS3rver> {
    const directory = await mkdtemp(join(tmpdir(), "castore-s3-"));
    const server = new LocalS3rver(directory, options.port ?? 0);
    try {
      await server.run();
    } catch (err) {
      await rm(directory, { recursive: true, force: true });
      throw err;
    }
    return server;
  }

  private async run(): Promise<void> {
    const S3rver = await loadS3rver();
    const instance = new S3rver({
      address: "127.0.0.1",
      port: this.currentPort, // 0 on first start: the kernel picks a free port
      directory: this.directory,
      silent: true,
    });
    const { port } = await instance.run();
    this.instance = instance;
    this.currentPort = port;
  }

  /** Closes the listener and listens again on the same port with the same buckets. */
  async restart(options: { downtimeMs?: number } = {}): Promise<void> {
    await this.close();
    if (options.downtimeMs) await new Promise((r) => setTimeout(r, options.downtimeMs));
    await this.run();
  }

  private async close(): Promise<void> {
    const instance = this.instance;
    this.instance = undefined;
    if (instance) await instance.close();
  }

  async stop(): Promise<void> {
    try {
      await this.close();
    } finally {
      await rm(this.directory, { recursive: true, force: true });
    }
  }
}
