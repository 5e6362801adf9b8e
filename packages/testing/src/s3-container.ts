import { MinioContainer, type StartedMinioContainer } from "@testcontainers/minio";
import { GenericContainer, Wait } from "testcontainers";
import { getFreePort } from "./free-port.js";
import { StartedLoopbackContainer } from "./loopback-container.js";
import { randomUUID } from "node:crypto";
import { DEFAULT_S3_IMAGE, INSTANCE_LABEL, NO_PULL, removeOnFailedStart } from "./runtime.js";

/** Credentials s3rver accepts (it accepts any well-formed signature). */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

/**
 * s3rver from the locally built `castore-test/s3:1` image
 * (scripts/images/build-images.sh), in the style of the testcontainers
 * modules: host networking, listening on 127.0.0.1 at a port chosen by the
 * helper (or {@link withPort}), buckets kept inside the container.
 */
export class S3rverTestContainer extends GenericContainer {
  private port: number | undefined;

  constructor(image: string = DEFAULT_S3_IMAGE) {
    super(image);
    this.withNetworkMode("host")
      .withPullPolicy(NO_PULL)
      .withEnvironment({ S3_DIRECTORY: "/var/lib/s3rver", S3_ADDRESS: "127.0.0.1", S3_SILENT: "1" })
      .withWaitStrategy(Wait.forLogMessage(/S3rver listening on/))
      .withStartupTimeout(60_000);
  }

  /** Port to listen on (default: a free port on 127.0.0.1). */
  withPort(port: number): this {
    this.port = port;
    return this;
  }

  override async start(): Promise<StartedS3rverTestContainer> {
    const port = this.port ?? (await getFreePort());
    const instance = randomUUID();
    this.withCommand(["/usr/local/bin/castore-s3-start", String(port)]).withLabels({ [INSTANCE_LABEL]: instance });
    return new StartedS3rverTestContainer(await removeOnFailedStart(instance, () => super.start()), port);
  }
}

export class StartedS3rverTestContainer extends StartedLoopbackContainer {
  /** http://127.0.0.1:PORT */
  getEndpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }
}

/**
 * MinIO (`@testcontainers/minio`) adapted to host networking: the engines
 * here have no bridge network, so the API listens on 127.0.0.1 at a chosen
 * port instead of a mapped one, and readiness is read from the log.
 */
export class HostNetworkMinioContainer extends MinioContainer {
  private port: number | undefined;

  constructor(image: string) {
    super(image);
    // Drop the mapped ports MinioContainer exposes: with host networking they are never bound.
    this.exposedPorts = [];
    delete this.hostConfig.PortBindings;
    if (this.createOpts.ExposedPorts) delete this.createOpts.ExposedPorts;
    this.withNetworkMode("host")
      .withPullPolicy(NO_PULL)
      .withWaitStrategy(Wait.forLogMessage(/API: /))
      .withStartupTimeout(60_000);
  }

  withPort(port: number): this {
    this.port = port;
    return this;
  }

  override async start(): Promise<StartedMinioContainer & { getEndpoint(): string }> {
    const port = this.port ?? (await getFreePort());
    const consolePort = await getFreePort();
    this.withCommand([
      "server",
      "--address",
      `127.0.0.1:${port}`,
      "--console-address",
      `127.0.0.1:${consolePort}`,
      "/data",
    ]);
    const instance = randomUUID();
    this.withLabels({ [INSTANCE_LABEL]: instance });
    const started = await removeOnFailedStart(instance, () => super.start());
    return Object.assign(started, { getEndpoint: () => `http://127.0.0.1:${port}` });
  }
}
