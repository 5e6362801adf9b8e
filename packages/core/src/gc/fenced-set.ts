/**
 * Setting a ref on a store that collects garbage (spec §10.2), the loop every
 * such store's RefStore runs in its compareAndSetRef.
 *
 * Protecting a tree (protectClosure) marks its blobs, then its directories,
 * in several steps. A collection that starts between two steps may have read
 * the directories as old and unreachable before they were marked, and then
 * take a blob marked before its start: the tree the ref names is broken. So
 * each store counts collections in where ref sets can see it
 * (CollectableStore.startCollection), and the set is fenced: it reads the
 * count before protecting, and the step that writes the ref gives up,
 * changing nothing, if the count moved. Then the tree is protected again,
 * every mark now after that collection's start (young to it, or found gone:
 * ClosureError), and the write retried. A collection that starts after the
 * write reads the ref.
 */
import { BackendError } from "../errors.js";
import type { SwapResult } from "../refs/service.js";

/** What a fenced swap answers when a collection started since the count was read: nothing was changed. */
export const COLLECTION_STARTED: unique symbol = Symbol("a collection started");

/** Attempts of a set that keeps finding a collection started while its tree was being protected. */
export const PROTECT_ATTEMPTS = 5;

/** The store's three steps of a fenced set; `Count` is however the store records collections started. */
export interface FencedSetSteps<Count> {
  /** How many collections have started (read before protecting). */
  collectionsStarted(): Promise<Count>;
  /** Checks the tree is wholly stored and marks it used (core's protectClosure over the store). */
  protect(): Promise<void>;
  /** The compare-and-set, atomically with checking that the count is still `started`. */
  swap(started: Count): Promise<SwapResult | typeof COLLECTION_STARTED>;
}

/** Runs a fenced set (see above) for ref `name` of store `backend`; BackendError after PROTECT_ATTEMPTS lost races. */
export async function fencedSet<Count>(
  backend: string,
  name: string,
  steps: FencedSetSteps<Count>,
): Promise<SwapResult> {
  for (let attempt = 1; attempt <= PROTECT_ATTEMPTS; attempt++) {
    const started = await steps.collectionsStarted();
    await steps.protect();
    const result = await steps.swap(started);
    if (result !== COLLECTION_STARTED) return result;
  }
  throw new BackendError(
    backend,
    `setting ref ${name}: a garbage collection started while its tree was being protected, ${PROTECT_ATTEMPTS} times in a row`,
  );
}
