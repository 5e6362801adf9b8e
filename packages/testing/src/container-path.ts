import {
  dockerDisabled,
  ENV,
  errorMessage,
  imageExists,
  isCi,
  probeDocker,
  TestServerUnavailableError,
} from "./runtime.js";

/** The hint when no container runtime answers (shared by every test server). */
const START_HINT = "Start a docker engine and build the images: source .ci/lib/docker.sh (as root).";

export interface ContainerPathOptions<T> {
  /** The server's name in messages: "PostgreSQL", "S3". */
  label: string;
  /** The locally built image; never pulled. */
  image: string;
  /** The hint when the image is missing (how to build it), if there is one. */
  buildHint: string | undefined;
  /** The paths tried so far; this step appends what went wrong with it. */
  attempts: string[];
  /** Starts the container from the image (only called when the image exists). */
  start: () => Promise<T>;
}

export interface ContainerPathOutcome<T> {
  /** The started server, when the container path worked. */
  started?: T;
  /** Says on stderr that a local fallback stands in, when a container runtime answered (the image is then missing or broken). */
  warnFallback(using: string): void;
}

/**
 * Step 2 of every start*TestServer: the test image through testcontainers,
 * when a container runtime answers and the image exists. When it fails, what
 * went wrong goes into `attempts`; with CI set that is an error (CI must test
 * against the images, not against local fallbacks), else the caller falls
 * back to a local server.
 */
export async function tryContainerPath<T>(options: ContainerPathOptions<T>): Promise<ContainerPathOutcome<T>> {
  const { label, image, buildHint, attempts } = options;
  const docker = await probeDocker();
  let hint: string | undefined = dockerDisabled() ? `Unset ${ENV.noDocker} in CI.` : START_HINT;
  if (docker.ok) {
    hint = undefined;
    if (await imageExists(docker.client, image)) {
      try {
        return { started: await options.start(), warnFallback: () => undefined };
      } catch (err) {
        attempts.push(`container ${image}: failed to start: ${errorMessage(err)}`);
      }
    } else {
      hint = buildHint;
      attempts.push(`container ${image}: image not found locally`);
    }
  } else {
    attempts.push(`container ${image}: ${docker.reason}`);
  }
  if (isCi()) {
    throw new TestServerUnavailableError(
      `${label} test server (CI is set: the container path is required, local fallbacks are not used)`,
      attempts,
      hint,
    );
  }
  return {
    warnFallback(using: string) {
      if (docker.ok) {
        console.warn(
          `[@castore-ts/testing] ${label}: container path unavailable, using ${using} (${attempts.at(-1)})${hint ? `. ${hint}` : ""}`,
        );
      }
    },
  };
}
