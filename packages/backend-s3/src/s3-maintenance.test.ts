/**
 * What `castore verify` needs of the S3 store, against a real S3 server:
 * listing past object names that are not digests.
 */
import { CorruptionError, type InvalidStoredKey, directoryDigest, fixtures } from "@castore-ts/core";
import { describe, expect, it } from "vitest";
import { s3TestStoresForFile, upload } from "./test-s3.js";

const stores = s3TestStoresForFile();

async function collectAll<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("listDigests", () => {
  it("an object name under dirs/ that is not a digest goes to onInvalidKey and the listing goes on; without it, CorruptionError", async () => {
    const { service, prefix } = stores.open();
    try {
      await upload(service, [fixtures.DIRECTORY_A, fixtures.DIRECTORY_B]);
      // Names castore never writes: sorting before and after the hex digests.
      await stores.putRaw(`${prefix}dirs/0-not-a-digest`, new Uint8Array(1));
      await stores.putRaw(`${prefix}dirs/${"A".repeat(64)}`, new Uint8Array(1));
      const invalid: InvalidStoredKey[] = [];
      const listed = await collectAll(service.listDigests({ onInvalidKey: (k) => invalid.push(k) }));
      expect(new Set(listed.map((d) => d.hex))).toEqual(
        new Set([fixtures.DIRECTORY_A, fixtures.DIRECTORY_B].map((d) => directoryDigest(d).hex)),
      );
      const reason = "object name under dirs/ is not a digest (64 lowercase hex digits)";
      expect(invalid).toEqual([
        { key: `${prefix}dirs/0-not-a-digest`, reason },
        { key: `${prefix}dirs/${"A".repeat(64)}`, reason },
      ]);
      const error = await collectAll(service.listDigests()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(CorruptionError);
      expect(String(error)).toContain(`(key ${prefix}dirs/0-not-a-digest)`);
    } finally {
      await service.close();
    }
  });
});
