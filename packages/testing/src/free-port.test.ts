import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { getFreePort } from "./index.js";

describe("getFreePort", () => {
  it("returns distinct ports that can be bound on 127.0.0.1", async () => {
    const ports = await Promise.all(Array.from({ length: 10 }, () => getFreePort()));
    expect(new Set(ports).size).toBe(10);
    for (const port of ports.slice(0, 3)) {
      await new Promise<void>((resolve, reject) => {
        const s = createServer().once("error", reject);
        s.listen(port, "127.0.0.1", () => s.close(() => resolve()));
      });
    }
  });
});
