/**
 * What a backend hands the suite (a target: a factory and its declared
 * capabilities) and what the suite hands back (a report).
 */
import type { BlobService, Digest, DirectoryService, GarbageCollector, RefService, SizeCheck } from "@castore-ts/core";

export interface ConformanceTarget {
  /** The backend's name, shown in every message. */
  name: string;
  /** A fresh, isolated service per call: each scenario starts from an empty store. */
  factory(): Promise<ConformanceInstance>;
  /** What the backend supports; anything not declared is expected to work (see Capabilities). */
  capabilities?: Capabilities;
  /**
   * Says why an error means the store went away (a dropped connection, a
   * timeout), or returns undefined. Where a scenario expects a rejection, such
   * an error fails it instead: a rejection must be the store's answer. A
   * BackendError marked `unavailable` always counts; a remote target adds
   * what its transport knows (`castore conformance URL`: gRPC UNAVAILABLE,
   * DEADLINE_EXCEEDED).
   */
  transportFailure?(error: unknown): string | undefined;
  /**
   * How the store checks declared sizes on upload (spec §1.1), when known:
   * closure.legacy-sizes then requires exact to reject snix's legacy sizes
   * and snix-compat to store them. Undeclared (a server tested by URL),
   * either verdict passes and is noted.
   */
  sizeCheck?: SizeCheck;
  /**
   * Roots of directories already stored (a production server's): the
   * roots.* scenarios run only when some are given, and read and check each
   * closure (digests, validity, root-to-leaves order, sizes, completeness).
   * Nothing is uploaded for them: they suit `write: "…"` targets.
   */
  roots?: readonly Digest[];
}

export interface ConformanceInstance {
  service: DirectoryService;
  /** Called after the scenario; when absent the suite calls `service.close()`. */
  teardown?(): Promise<void>;
  /**
   * Stores raw bytes under a digest, bypassing validation and replacing what
   * is there (the corruption scenario). Needed unless `capabilities.corruption`
   * says why the backend cannot inject corruption.
   */
  corrupt?(digest: Digest, bytes: Uint8Array): Promise<void>;
  /** The same store's blobs (spec §8): needed unless `capabilities.blobs` says why there are none. */
  blobs?: BlobService;
  /**
   * Replaces the stored bytes of one blob chunk, bypassing every check (the
   * blob.corruption scenario). Needed unless `capabilities.blobCorruption` says why not.
   */
  corruptChunk?(digest: Digest, bytes: Uint8Array): Promise<void>;
  /** The same store's refs (spec §9), over `service` and `blobs`: needed unless `capabilities.refs` says why there are none. */
  refs?: RefService;
  /**
   * The same store's garbage collector (spec §10), over the same objects as
   * `service`, `blobs` and `refs`: needed unless `capabilities.gc` says why
   * there is none. Uploads may go through a server while this collects its store.
   */
  gc?: GarbageCollector;
}

/**
 * Each capability is `true` (supported), or a string saying why the backend
 * lacks it; the scenarios that need it are then reported as skipped with that
 * reason. An undeclared capability counts as `true`: the suite skips only
 * what a backend declares missing, and says so.
 */
export interface Capabilities {
  /** Corruption can be injected through `instance.corrupt` (spec §7.14). */
  corruption?: true | string;
  /**
   * `service.repair(directories)` replaces damaged stored bytes (the
   * corruption.repair scenario; `castore verify --repair` uses it). A backend
   * that cannot overwrite what it stores says why.
   */
  repair?: true | string;
  /** The service accepts uploads. Nearly every scenario needs this; a read-only remote may not. */
  write?: true | string;
  /** get()/getRecursive() of a directory that was not an upload's root (traversal needs it too). */
  getNonRoot?: true | string;
  /** A 10 000-directory tree, a 10 000-deep chain and a directory with 50 000 entries round-trip (spec §7.16). */
  largeTrees?: true | string;
  /**
   * getRecursive yields strictly breadth first (spec §3.2). Consumers accept
   * any root-to-leaves order, so a backend that yields another (the S3
   * backend's closure-object order, a tvix or snix server) declares why.
   */
  breadthFirst?: true | string;
  /**
   * getRecursive streams: with a slow consumer, memory in this process does
   * not grow with the tree (spec §7.16). Measured by forcing garbage
   * collection, so it is skipped when that is impossible.
   */
  streaming?: true | string;
  /**
   * Errors carry castore's classes (`code` "VALIDATION", "CLOSURE",
   * "CORRUPTION", "ABORTED"; `instanceof` also accepted). Without it the
   * suite still requires every rejection and that nothing is stored, but not
   * the error's class: a remote backend sees the server's errors as status
   * codes (tvix answers validation failures with INTERNAL) and cannot always
   * map them back. Local backends should leave it undeclared (or `true`).
   */
  typedErrors?: true | string;
  /**
   * Each `factory()` call gives an empty store of its own. A store shared
   * across scenarios (a running server tested by URL, as `castore
   * conformance URL` does) declares why it is not: scenarios still check that
   * failed and aborted uploads fail, but cannot tell "never stored" from
   * "stored by an earlier scenario", so absence checks are noted, not made.
   * The corruption scenarios need it: they damage what they corrupt.
   */
  isolated?: true | string;
  /** The target stores blobs: `instance.blobs` is set (the blob.* scenarios, spec §8). */
  blobs?: true | string;
  /** A blob of 1 GiB round-trips, streamed (blob.large). */
  largeBlobs?: true | string;
  /** A stored chunk can be damaged through `instance.corruptChunk` (blob.corruption). */
  blobCorruption?: true | string;
  /** The target stores refs: `instance.refs` is set (the refs.* scenarios, spec §9). */
  refs?: true | string;
  /**
   * A ref's compare-and-swap is atomic: of two racing swaps from one value
   * exactly one wins (refs.compare-and-swap-race). A store whose engine
   * cannot make it atomic (an S3 server that ignores conditional writes)
   * says why; the sequential compare-and-swap checks still run.
   */
  atomicRefSwap?: true | string;
  /** The target collects garbage: `instance.gc` is set (the gc.* scenarios, spec §10). */
  gc?: true | string;
  /**
   * A collection is safe beside uploads and ref changes running at the same
   * time (gc.race-uploads, spec §10.2): the store re-checks "unused since the
   * cutoff" atomically as it deletes each object.
   */
  gcConcurrent?: true | string;
  /**
   * The service takes partial uploads (`putMultipleStart({ partial: true })`,
   * spec §3.6) and says so (`partialUploads()`): the partial.* scenarios.
   */
  partialUpload?: true | string;
}

export type CapabilityName = keyof Capabilities;

/** The helpers a scenario's check gets; see checks.ts for the assertions built on them. */
export interface ScenarioContext {
  readonly target: ConformanceTarget;
  readonly instance: ConformanceInstance;
  readonly service: DirectoryService;
  /** The store's blobs; set for every scenario that requires "blobs". */
  readonly blobs: BlobService | undefined;
  /** Whether error classes are checked (capabilities.typedErrors). */
  readonly typedErrors: boolean;
  /** Whether the store starts empty and is this scenario's alone (capabilities.isolated). */
  readonly isolated: boolean;
  /** Aborted when the scenario times out; long loops should stop on it. */
  readonly signal: AbortSignal;
  /** Ends the scenario as failed. */
  fail(message: string): never;
  /** Ends the scenario as skipped, with the reason (for what can only be known at run time). */
  skip(reason: string): never;
  /** Adds a line to the result's message (e.g. a measurement), shown even when the scenario passes. */
  note(text: string): void;
}

export interface Scenario {
  /**
   * Unique and stable: lowercase, dotted, grouped by feature module (e.g.
   * "closure.dangling-child"). Reports, test names and `--filter` use it; it
   * does not change when the title is reworded.
   */
  id: string;
  /** The title reports show after the id, e.g. "§7.5 upload [A, B] → …"; may be reworded. */
  name: string;
  /** Capabilities the scenario needs; a missing one makes it a skip with the declared reason. */
  requires: CapabilityName[];
  /** Most milliseconds the scenario may take, including the factory and teardown. Default 30 000. */
  timeoutMs?: number;
  run(ctx: ScenarioContext): Promise<void>;
}

export interface ScenarioResult {
  /** The scenario's stable id, e.g. "closure.dangling-child". */
  id: string;
  /** The scenario's title (its `name`). */
  title: string;
  status: "pass" | "fail" | "skip";
  /** Why it failed or was skipped; notes of a pass. */
  message?: string;
  ms: number;
}

export interface ConformanceReport {
  backend: string;
  results: ScenarioResult[];
  passed: number;
  failed: number;
  skipped: number;
}

export interface RunOptions {
  /** Runs only some scenarios; see ScenarioFilter. */
  filter?: ScenarioFilter;
  /** Called after each scenario, e.g. to print progress. */
  onResult?(result: ScenarioResult): void;
}

/**
 * Which scenarios to run: a string is an id or an id prefix ("closure." or
 * "closure" runs every closure.* scenario); a RegExp is tested against the
 * title; a function is asked about each scenario (its id and title), e.g. to
 * leave some out.
 */
export type ScenarioFilter = string | RegExp | ((scenario: { id: string; name: string }) => boolean);
