/**
 * `@castore-ts/conformance/vitest`: the suite as vitest tests. The only module
 * of this package that imports vitest (an optional peer dependency).
 *
 *   describeDirectoryService({ name: "my-backend", factory: async () => ({ service: new MyService() }) });
 */
import { describe, it } from "vitest";
import { type DefineTestsOptions, defineConformanceTests } from "./define-tests.js";
import type { ConformanceTarget } from "./types.js";

export function describeDirectoryService(target: ConformanceTarget, opts: DefineTestsOptions = {}): void {
  defineConformanceTests(
    {
      describe,
      it: (name, fn, timeoutMs) => it(name, (context) => fn(context), timeoutMs),
      skip: (name) => it.skip(name, () => {}),
    },
    target,
    opts,
  );
}
