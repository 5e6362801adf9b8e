import { describe, expect, it } from "vitest";
import { BackendError, ClosureError, ValidationError, isCastoreError } from "./errors.js";
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
