import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { BackendError, ClosureError, ValidationError, forwardAbort, isCastoreError } from "./errors.js";
import { MapStore } from "./test-memory-store.js";
import { StoreDirectoryService } from "./store-service.js";
import { EMPTY_BLOB_DIGEST } from "./fixtures.js";

/** What a ValidationError of another copy of core looks like: same name and code, another class. */
class ValidationErrorOfAnotherCopy extends Error {
  readonly code = "VALIDATION";
  constructor(message: string) {
    super(message);
    this.name = "ValidationError";
  }
}

describe("isCastoreError", () => {
  it("recognises castore's own error classes", () => {
    expect(isCastoreError(new ValidationError("v"))).toBe(true);
    expect(isCastoreError(new ClosureError("c"))).toBe(true);
    expect(isCastoreError(new BackendError("b", "m"))).toBe(true);
  });
  it("recognises an error of another class (another copy of core) by its code", () => {
    expect(isCastoreError(new ValidationErrorOfAnotherCopy("bad name"))).toBe(true);
  });
  it("with a code, recognises only castore errors of that code, of any copy of core", () => {
    expect(isCastoreError(new ValidationError("v"), "VALIDATION")).toBe(true);
    expect(isCastoreError(new ValidationErrorOfAnotherCopy("bad name"), "VALIDATION")).toBe(true);
    expect(isCastoreError(new ValidationError("v"), "CORRUPTION")).toBe(false);
    expect(isCastoreError(Object.assign(new Error("grpc"), { code: "CORRUPTION" }), "CLOSURE")).toBe(false);
    expect(isCastoreError({ code: "CORRUPTION", message: "not an Error" }, "CORRUPTION")).toBe(false);
  });
  it("does not take other errors for castore's: no code, an engine's code, a non-Error", () => {
    expect(isCastoreError(new Error("plain"))).toBe(false);
    expect(isCastoreError(Object.assign(new Error("fs"), { code: "ENOENT" }))).toBe(false);
    expect(isCastoreError(Object.assign(new Error("grpc"), { code: 5 }))).toBe(false);
    expect(isCastoreError({ code: "VALIDATION", message: "not an Error" })).toBe(false);
    expect(isCastoreError(undefined)).toBe(false);
  });
  it("a store raising another copy's castore error gets it through unwrapped, not as BackendError", async () => {
    const store = new MapStore();
    store.getMany = async () => {
      throw new ValidationErrorOfAnotherCopy("from another copy");
    };
    const service = new StoreDirectoryService(store);
    const error = await service.get(EMPTY_BLOB_DIGEST).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationErrorOfAnotherCopy);
  });
});

describe("forwardAbort", () => {
  it("aborts the target with the source's reason, at once when the source has aborted already", () => {
    const source = new AbortController();
    const target = new AbortController();
    forwardAbort(source.signal, target);
    expect(target.signal.aborted).toBe(false);
    const reason = new Error("shutting down");
    source.abort(reason);
    expect(target.signal.reason).toBe(reason);

    const late = new AbortController();
    forwardAbort(source.signal, late);
    expect(late.signal.reason).toBe(reason);
  });

  it("once stopped, leaves no listener on the source and forwards nothing", () => {
    const source = new AbortController();
    const target = new AbortController();
    const stop = forwardAbort(source.signal, target);
    expect(getEventListeners(source.signal, "abort")).toHaveLength(1);
    stop();
    expect(getEventListeners(source.signal, "abort")).toHaveLength(0);
    source.abort();
    expect(target.signal.aborted).toBe(false);
    forwardAbort(undefined, target)(); // no source: nothing to follow or stop
    expect(target.signal.aborted).toBe(false);
  });
});
