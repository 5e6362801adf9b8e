import { BackendError, type DirectoryService, MapRefStore, RefService, ValidationError } from "@castore-ts/core";
import { LARGE_BLOBS_ELSEWHERE, MapBlobService } from "./broken-blobs.js";
import { describe, expect, it, vi } from "vitest";
import { MyDirectoryService } from "./readme-example/my-backend.js";
import { type ConformanceTarget, type Scenario, runConformance, runScenario, scenarios, skipReason } from "./index.js";

const correct = (): ConformanceTarget => ({
  name: "map",
  factory: async () => {
    const service = new MyDirectoryService();
    const blobs = new MapBlobService();
    return {
      service,
      corrupt: async (digest, bytes) => service.corrupt(digest, bytes),
      blobs,
      corruptChunk: async (digest, bytes) => blobs.store.corruptChunk(digest, bytes),
      refs: new RefService(new MapRefStore(), service, blobs),
    };
  },
  capabilities: { largeBlobs: LARGE_BLOBS_ELSEWHERE, gc: "a Map store without times of last use" },
});

/** A service whose errors are plain Errors with the same message, as a remote client might produce. */
function untyped(
  service: DirectoryService,
  plain = (e: unknown): Error => new Error((e as Error).message),
): DirectoryService {
  return {
    get: (d, o) => service.get(d, o).catch((e) => Promise.reject(plain(e))),
    put: (d, o) => service.put(d, o).catch((e) => Promise.reject(plain(e))),
    getRecursive: async function* (d, o) {
      try {
        yield* service.getRecursive(d, o);
      } catch (e) {
        throw plain(e);
      }
    },
    putMultipleStart: (o) => {
      const p = service.putMultipleStart(o);
      return {
        put: (d) => p.put(d).catch((e) => Promise.reject(plain(e))),
        close: () => p.close().catch((e) => Promise.reject(plain(e))),
        abort: (r) => p.abort(r),
      };
    },
    close: () => service.close(),
  };
}

describe("scenarios", () => {
  it("cover every item of spec §7, each by its own scenario", () => {
    for (let item = 1; item <= 18; item++) {
      expect(
        scenarios.some((s) => s.name.startsWith(`§7.${item} `)),
        `§7.${item}`,
      ).toBe(true);
    }
  });

  it("run in spec order", () => {
    const items = scenarios
      .map((s) => /^§7\.(\d+) /.exec(s.name)?.[1])
      .filter((x) => x !== undefined)
      .map(Number);
    expect(items).toEqual([...items].sort((a, b) => a - b));
  });
});

describe("runConformance", () => {
  it("reports capability skips with the declared reason, and runs the rest", async () => {
    const report = await runConformance({
      ...correct(),
      capabilities: { write: "read-only mirror", largeBlobs: LARGE_BLOBS_ELSEWHERE },
    });
    const needsWrite = scenarios.filter((s) => s.requires.includes("write"));
    expect(report.skipped).toBe(needsWrite.length);
    for (const r of report.results.filter((x) => x.status === "skip")) {
      expect(r.message).toBe('capability "write" not supported: read-only mirror');
    }
    expect(report.passed).toBe(scenarios.length - needsWrite.length);
    expect(report.failed).toBe(0);
  });

  it("filters by name and calls onResult once per scenario", async () => {
    const onResult = vi.fn();
    const report = await runConformance(correct(), { filter: /^§7\.(5|8) /g, onResult });
    expect(report.results.map((r) => r.title.slice(0, 5))).toEqual(["§7.5 ", "§7.8 "]);
    expect(onResult).toHaveBeenCalledTimes(2);
    expect(report).toMatchObject({ backend: "map", passed: 2, failed: 0, skipped: 0 });
  });

  it("filters by id or id prefix, and results carry the id and the title", async () => {
    const one = await runConformance(correct(), { filter: "closure.dangling-child" });
    expect(one.results.map((r) => [r.id, r.title])).toEqual([
      ["closure.dangling-child", "§7.4 upload [B] → fails at put or close; nothing stored"],
    ]);
    const closure = await runConformance(correct(), { filter: "closure." });
    const expected = scenarios.filter((s) => s.id.startsWith("closure.")).map((s) => s.id);
    expect(expected.length).toBeGreaterThan(1);
    expect(closure.results.map((r) => r.id)).toEqual(expected);
    expect(closure.failed).toBe(0);
  });

  it("filters with a function of the id and the title", async () => {
    const asked: string[] = [];
    const report = await runConformance(correct(), {
      filter: (s) => {
        asked.push(`${s.id} ${s.name}`);
        return s.id.startsWith("closure.") && s.id !== "closure.dangling-child";
      },
    });
    expect(asked).toEqual(scenarios.map((s) => `${s.id} ${s.name}`));
    const expected = scenarios.filter((s) => s.id.startsWith("closure.") && s.id !== "closure.dangling-child");
    expect(report.results.map((r) => r.id)).toEqual(expected.map((s) => s.id));
  });

  it("gives every scenario a unique lowercase dotted id", () => {
    const ids = scenarios.map((s) => s.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[a-z0-9-]+\.[a-z0-9-]+$/);
  });

  it("checks error classes by default, and not when typedErrors says why", async () => {
    const target = (typedErrors?: string): ConformanceTarget => ({
      name: "untyped",
      factory: async () => ({ service: untyped(new MyDirectoryService()) }),
      capabilities: {
        corruption: "not wired",
        blobs: "this target stores directories only",
        refs: "this target stores directories only",
        gc: "this target stores directories only",
        partialUpload: "the test wrapper forwards no partial uploads",
        ...(typedErrors ? { typedErrors } : {}),
      },
    });
    const notLarge = /^(?!§7\.1[56] )/;
    const strict = await runConformance(target(), { filter: notLarge });
    const failed = strict.results.filter((r) => r.status === "fail");
    expect(failed.map((r) => r.title)).toContain("§7.4 upload [B] → fails at put or close; nothing stored");
    expect(failed.find((r) => r.title.startsWith("§7.4 "))?.message).toMatch(
      /expected ClosureError \(code "CLOSURE"\)/,
    );

    const lenient = await runConformance(target("a remote backend sees status codes"), { filter: notLarge });
    expect(lenient.results.filter((r) => r.status === "fail")).toEqual([]);
  });

  it("without typedErrors, a transport failure is never taken for a rejection", async () => {
    const target = (
      wrap: (e: unknown) => Error,
      transportFailure?: ConformanceTarget["transportFailure"],
    ): ConformanceTarget => ({
      name: "remote",
      factory: async () => ({ service: untyped(new MyDirectoryService(), wrap) }),
      capabilities: {
        typedErrors: "a server without the error-code trailer",
        blobs: "this target stores directories only",
      },
      ...(transportFailure ? { transportFailure } : {}),
    });
    const gone = (e: unknown) =>
      new BackendError("remote", `unavailable: ${(e as Error).message}`, { unavailable: true });
    const report = await runConformance(target(gone), { filter: "closure.dangling-child" });
    expect(report.results[0]).toMatchObject({ id: "closure.dangling-child", status: "fail" });
    expect(report.results[0].message).toMatch(
      /failed because the server went away \(the backend was unavailable: BackendError/,
    );

    // The target's own rule: here, every error whose message says "reset".
    const reset = (e: unknown) => new Error(`stream reset: ${(e as Error).message}`);
    const custom = await runConformance(
      target(reset, (e) => ((e as Error).message.includes("reset") ? "the connection was reset" : undefined)),
      { filter: "closure.dangling-child" },
    );
    expect(custom.results[0].message).toMatch(/server went away \(the connection was reset: /);
    // The same errors with no rule are rejections like any other.
    expect((await runConformance(target(reset), { filter: "closure.dangling-child" })).failed).toBe(0);
  });

  it("runs on a shared store that declares isolated, noting absence checks and skipping corruption", async () => {
    const shared = new MyDirectoryService();
    const sharedRefs = new RefService(new MapRefStore(), shared, undefined);
    const report = await runConformance(
      {
        name: "shared",
        factory: async () => ({
          service: shared,
          teardown: async () => {},
          corrupt: async (d, b) => shared.corrupt(d, b),
          // Refs on the shared store too: the refs.* scenarios use names no other run used.
          refs: sharedRefs,
        }),
        capabilities: {
          isolated: "one running server for every scenario",
          blobs: "this target stores directories only",
          partialUpload: "the test wrapper forwards no partial uploads",
        },
      },
      { filter: /^(?!§7\.1[56] )/ },
    );
    expect(report.results.filter((r) => r.status === "fail")).toEqual([]);
    const skips = report.results.filter((r) => r.status === "skip").map((r) => r.message);
    const blobSkips = skips.filter((m) => m?.startsWith('capability "blobs" not supported'));
    expect(blobSkips.length).toBe(scenarios.filter((s) => s.id.startsWith("blob.")).length);
    expect(skips.filter((m) => !blobSkips.includes(m))).toEqual([
      'capability "isolated" not supported: one running server for every scenario',
      "the service has no listDigests (optional in the interface)",
      'capability "isolated" not supported: one running server for every scenario',
      'capability "isolated" not supported: one running server for every scenario',
      ...scenarios
        .filter((s) => s.id.startsWith("gc."))
        .map(() => 'capability "isolated" not supported: one running server for every scenario'),
      ...scenarios
        .filter((s) => s.requires.includes("partialUpload"))
        .map(() => 'capability "partialUpload" not supported: the test wrapper forwards no partial uploads'),
    ]);
    expect(report.results.find((r) => r.title.startsWith("§7.4 "))?.message).toMatch(
      /absence of A=af1349b9.* not checked/,
    );
  });

  it("fails a corruption scenario when the instance has no corrupt hook and the capability is not declared", async () => {
    const report = await runConformance(
      { name: "hookless", factory: async () => ({ service: new MyDirectoryService() }) },
      { filter: /^§7\.14 / },
    );
    expect(report.results[0].status).toBe("fail");
    expect(report.results[0].message).toMatch(/no corrupt\(digest, bytes\) hook/);
  });
});

describe("runScenario", () => {
  const never: Scenario = {
    id: "test.hangs",
    name: "hangs",
    requires: [],
    timeoutMs: 50,
    run: () => new Promise(() => {}),
  };

  it("times a scenario out, and still tears the instance down", async () => {
    const teardown = vi.fn(async () => {});
    const r = await runScenario(
      { name: "slow", factory: async () => ({ service: new MyDirectoryService(), teardown }) },
      never,
    );
    expect(r).toMatchObject({ status: "fail", message: "slow: [test.hangs] hangs: timed out after 50 ms" });
    expect(teardown).toHaveBeenCalledOnce();
  });

  it("closes the service when the instance has no teardown", async () => {
    const service = new MyDirectoryService();
    const close = vi.spyOn(service, "close");
    const r = await runScenario({ name: "m", factory: async () => ({ service }) }, scenarios[0]);
    expect(r.status).toBe("pass");
    expect(close).toHaveBeenCalledOnce();
  });

  it("reports a failing factory and a failing teardown", async () => {
    const boom = await runScenario(
      { name: "b", factory: () => Promise.reject(new Error("no database")) },
      scenarios[0],
    );
    expect(boom).toMatchObject({
      status: "fail",
      message: `b: [${scenarios[0].id}] ${scenarios[0].name}: factory() failed: Error: no database`,
    });
    const teardown = () => Promise.reject(new ValidationError("still open"));
    const r = await runScenario(
      { name: "t", factory: async () => ({ service: new MyDirectoryService(), teardown }) },
      scenarios[0],
    );
    expect(r.status).toBe("fail");
    expect(r.message).toMatch(/teardown failed: ValidationError \(code VALIDATION\): still open$/);
  });

  it("turns an unexpected throw into a failure naming the error", async () => {
    const r = await runScenario(correct(), {
      id: "test.throws",
      name: "throws",
      requires: [],
      run: async () => {
        throw new TypeError("oops");
      },
    });
    expect(r).toMatchObject({
      status: "fail",
      message: "map: [test.throws] throws: unexpected error: TypeError: oops",
    });
  });

  it("says which capability a skip comes from", () => {
    const s: Scenario = { id: "test.x", name: "x", requires: ["write", "largeTrees"], run: async () => {} };
    expect(skipReason({ ...correct(), capabilities: { largeTrees: "tiny quota" } }, s)).toBe(
      'capability "largeTrees" not supported: tiny quota',
    );
    expect(skipReason({ ...correct(), capabilities: { largeTrees: true } }, s)).toBeUndefined();
  });
});
