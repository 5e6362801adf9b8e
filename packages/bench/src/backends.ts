/**
 * The six backends under test, each reached only through a store URL (what
 * `openDirectoryService(url)` and `castore serve --store URL` take). Every
 * measurement gets a fresh, empty store from `fresh(tag)`: a new LMDB
 * directory, PostgreSQL schema, S3 prefix, or a new `castore serve` process.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type PostgresTestServer,
  type S3TestServer,
  startCastoreServe,
  startPostgresTestServer,
  startS3TestServer,
} from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

export type BackendName = "memory" | "lmdb" | "postgres" | "s3" | "grpc" | "cache";

export interface FreshStore {
  url: string;
  /** Removes what the store left behind (files, server process). */
  dispose(): Promise<void>;
}

export interface Backend {
  name: BackendName;
  /** What sits behind the URL, for the notes. */
  setup: string;
  /** The test server a store lives on (postgres, s3), without `setup`'s "a fresh … per round". */
  server?: string;
  fresh(tag: string): Promise<FreshStore>;
}

/** Servers and folders the backends share for a whole run; `close()` releases them. */
export class BenchEnvironment {
  private constructor(
    readonly scratch: string,
    readonly postgres: PostgresTestServer | undefined,
    readonly s3: { server: S3TestServer; bucket: string } | undefined,
    readonly problems: string[],
  ) {}

  /** `only`: the backends the run measures (default all); a test server is started only for those that need one. */
  static async start(only?: readonly string[]): Promise<BenchEnvironment> {
    const scratch = await mkdtemp(join(tmpdir(), "castore-bench-"));
    const problems: string[] = [];
    const wanted = (name: BackendName) => !only || only.includes(name);
    const [postgres, s3] = await Promise.all([
      wanted("postgres")
        ? startPostgresTestServer().catch(
            (e) => void problems.push(`postgres: no test server (${(e as Error).message.split("\n")[0]})`),
          )
        : undefined,
      wanted("s3")
        ? startS3TestServer()
            .then(async (server) => ({ server, bucket: await server.createBucket() }))
            .catch((e) => void problems.push(`s3: no test server (${(e as Error).message.split("\n")[0]})`))
        : undefined,
    ]);
    return new BenchEnvironment(scratch, postgres ?? undefined, s3 ?? undefined, problems);
  }

  lmdbUrl(tag: string): string {
    return `lmdb://${join(this.scratch, tag)}`;
  }

  backends(): Backend[] {
    const list: Backend[] = [
      { name: "memory", setup: "memory://", fresh: async () => ({ url: "memory://", dispose: async () => {} }) },
      {
        name: "lmdb",
        setup: `lmdb:// in ${tmpdir()} (durable: fsync per upload)`,
        fresh: async (tag) => {
          const url = this.lmdbUrl(`lmdb-${tag}`);
          return { url, dispose: () => rm(new URL(url).pathname, { recursive: true, force: true }) };
        },
      },
    ];
    if (this.postgres) {
      const pg = this.postgres;
      const server = `PostgreSQL 15 (${pg.kind} test server, fsync off) on loopback`;
      list.push({
        name: "postgres",
        setup: `${server}, a fresh schema per round`,
        server,
        fresh: async (tag) => {
          const url = new URL(pg.url);
          url.searchParams.set("schema", `bench_${tag.replace(/[^A-Za-z0-9]/g, "_")}`);
          return { url: url.toString(), dispose: async () => {} };
        },
      });
    }
    if (this.s3) {
      const { server, bucket } = this.s3;
      const where = `S3 (${server.kind}${server.image ? ` ${server.image}` : ""}, s3rver) on loopback`;
      list.push({
        name: "s3",
        setup: `${where}, a fresh prefix per round`,
        server: where,
        fresh: async (tag) => {
          const creds = `${encodeURIComponent(server.accessKeyId)}:${encodeURIComponent(server.secretAccessKey)}`;
          const query = new URLSearchParams({
            endpoint: server.endpoint,
            region: server.region,
            forcePathStyle: "true",
          });
          return { url: `s3://${creds}@${bucket}/bench/${tag}?${query}`, dispose: async () => {} };
        },
      });
    }
    list.push(
      {
        name: "grpc",
        setup:
          "grpc+http:// to `castore serve --store memory://` in a child process, over loopback TCP; each new server warmed by untimed uploads and reads of another tree (2 000 directories; before a deep chain, also a chain of the same depth with other names) over the same connection",
        fresh: async () => {
          const server = await startCastoreServe(CASTORE_BIN, ["--listen", "127.0.0.1:0", "--store", "memory://"], {
            echoStderr: true,
          });
          return { url: server.url, dispose: async () => void (await server.stop()) };
        },
      },
      {
        name: "cache",
        setup: "cache://?near=memory://&far=lmdb://… (uploads go to far; the first read fills near)",
        fresh: async (tag) => {
          const far = this.lmdbUrl(`cache-far-${tag}`);
          const url = `cache://?near=${encodeURIComponent("memory://")}&far=${encodeURIComponent(far)}`;
          return { url, dispose: () => rm(new URL(far).pathname, { recursive: true, force: true }) };
        },
      },
    );
    return list;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.postgres?.stop(), this.s3?.server.stop()]);
    await rm(this.scratch, { recursive: true, force: true });
  }
}
