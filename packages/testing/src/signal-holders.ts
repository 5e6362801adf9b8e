/**
 * What a long-lived AbortSignal holds for calls: the measure of the tests
 * that finished calls leave nothing on the server's shutdown signal or on a
 * caller's own signal.
 */
import { getEventListeners } from "node:events";

/**
 * `signal`'s 'abort' listeners, plus the signals Node keeps for
 * AbortSignal.any() combinations with it (its internal kDependantSignals
 * set, never pruned on Node 20: nodejs/node#55351; 0 on a Node without one).
 */
export function heldBy(signal: AbortSignal): { listeners: number; dependants: number } {
  const key = Object.getOwnPropertySymbols(signal).find((s) => s.description === "kDependantSignals");
  const dependants =
    key === undefined ? undefined : (signal as unknown as Record<symbol, { size?: number } | undefined>)[key];
  return { listeners: getEventListeners(signal, "abort").length, dependants: dependants?.size ?? 0 };
}
