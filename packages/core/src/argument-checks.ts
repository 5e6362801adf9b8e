/**
 * Checks of a caller's arguments at a service's boundary, for callers that
 * are not type-checked (JavaScript, a cast): each refuses a value of the
 * wrong type with an error naming the argument and what came, before it
 * reaches a store (where it failed as if the store had, or was stored as
 * something else).
 */
import { ValidationError } from "./errors.js";

/**
 * What a JavaScript value is, in a few words, for messages about a caller's
 * argument of the wrong type ("a string", "a number", "undefined"): callers
 * that are not type-checked (JavaScript, `as any`) get told what they passed.
 */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of ${value.byteLength} bytes`;
  const type = typeof value;
  if (type !== "object") return `${/^[aeiou]/.test(type) ? "an" : "a"} ${type}`;
  const name = (value as object).constructor?.name;
  return name && name !== "Object" ? `a ${name}` : "an object";
}

/** Whether `value` is a Uint8Array (Buffer included), also one made in another realm (a vm context, a worker's). */
export function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array || Object.prototype.toString.call(value) === "[object Uint8Array]";
}

/** Throws ValidationError naming `argument` unless `value` is a Uint8Array (a Buffer is one). */
export function requireBytes(value: unknown, argument: string): asserts value is Uint8Array {
  if (!isBytes(value)) throw new ValidationError(`${argument} is ${describeValue(value)}, expected a Uint8Array`);
}
