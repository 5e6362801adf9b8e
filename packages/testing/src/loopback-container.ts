import { AbstractStartedContainer, type StartedTestContainer } from "testcontainers";

/**
 * A started container on the host network that listens on 127.0.0.1 at a
 * port chosen before it started: the engines here have no bridge network, so
 * there is no mapped port to look up and the host is always loopback.
 */
export class StartedLoopbackContainer extends AbstractStartedContainer {
  constructor(
    startedTestContainer: StartedTestContainer,
    protected readonly port: number,
  ) {
    super(startedTestContainer);
  }

  override getHost(): string {
    return "127.0.0.1";
  }

  getPort(): number {
    return this.port;
  }
}
