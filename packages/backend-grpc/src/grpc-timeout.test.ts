import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { MAX_TIMER_MS, parseGrpcTimeout } from "./grpc-timeout.js";

describe("parseGrpcTimeout", () => {
  it("no header: no deadline", () => {
    expect(parseGrpcTimeout(null)).toEqual({});
    expect(parseGrpcTimeout(undefined)).toEqual({});
  });

  it("every unit, in whole milliseconds rounded up", () => {
    const cases: [string, number][] = [
      ["2H", 7_200_000],
      ["3M", 180_000],
      ["5S", 5000],
      ["250m", 250],
      ["0m", 0],
      ["1500u", 2],
      ["3000u", 3],
      ["9999876u", 10_000],
      ["1u", 1],
      ["1n", 1],
      ["1000000n", 1],
      ["1000001n", 2],
      ["99999999n", 100],
      ["99999999u", 100_000],
      ["99999999m", 99_999_999],
    ];
    for (const [value, ms] of cases) expect(parseGrpcTimeout(value), value).toEqual({ timeoutMs: ms });
  });

  it("always a whole number a timer takes", () => {
    for (const unit of ["H", "M", "S", "m", "u", "n"]) {
      for (const digits of ["1", "7", "1500", "9999876", "99999999", "12345678"]) {
        const { timeoutMs, error } = parseGrpcTimeout(digits + unit);
        expect(error).toBeUndefined();
        if (timeoutMs === undefined) continue;
        expect(Number.isInteger(timeoutMs), digits + unit).toBe(true);
        expect(timeoutMs).toBeGreaterThanOrEqual(0);
        expect(timeoutMs).toBeLessThanOrEqual(MAX_TIMER_MS);
      }
    }
  });

  it("longer than a Node timer can wait (2³¹−1 ms): no deadline, rather than Node's 1 ms", () => {
    expect(parseGrpcTimeout("2147483S")).toEqual({ timeoutMs: 2_147_483_000 });
    expect(parseGrpcTimeout("2147484S")).toEqual({}); // just over 2³¹−1 ms
    expect(parseGrpcTimeout("3000000S")).toEqual({}); // between 2³¹ and 2³² ms
    expect(parseGrpcTimeout("5000000S")).toEqual({}); // above 2³² ms
    expect(parseGrpcTimeout("99999999H")).toEqual({});
    expect(parseGrpcTimeout("35791M")).toEqual({ timeoutMs: 2_147_460_000 });
    expect(parseGrpcTimeout("35792M")).toEqual({});
  });

  it("a malformed value is INTERNAL (as grpc-go and grpc-js) naming the value", () => {
    for (const value of [
      "",
      "garbage",
      "1",
      "S",
      "1s",
      "1h",
      "-1S",
      "+1S",
      "1.5S",
      " 1S",
      "1S ",
      "123456789m",
      "1S, 2S",
      "1e3m",
      "0x10m",
      "１S",
    ]) {
      const { timeoutMs, error } = parseGrpcTimeout(value);
      expect(timeoutMs, JSON.stringify(value)).toBeUndefined();
      expect(error?.code, JSON.stringify(value)).toBe(Code.Internal);
      expect(error?.rawMessage).toContain("malformed grpc-timeout");
    }
    expect(parseGrpcTimeout("x".repeat(10_000)).error!.rawMessage.length).toBeLessThan(200);
  });
});
