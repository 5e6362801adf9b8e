/**
 * Round trips of getRecursive through the gRPC client: one call (the
 * server streams the closure in it) for a tree of any depth or width. The
 * calls are counted where the server's handlers reach its DirectoryService
 * (each Get call is one get, or one getRecursive or getRecursiveEncoded, there), which happens before
 * the call's first response message: no race with the client's end of
 * stream. A client that asked once per level would fail these.
 */
import { deepChain, wideDirectory } from "@castore-ts/conformance";
import type { Directory, DirectoryService } from "@castore-ts/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GrpcDirectoryService } from "./grpc-directory-service.js";
import { memoryService } from "./memory-store.test-helper.js";
import { createDirectoryServiceServer, type DirectoryServiceServer } from "./server.js";

async function upload(service: DirectoryService, directories: Directory[]) {
  const putter = service.putMultipleStart();
  for (const d of directories) await putter.put(d);
  return putter.close();
}

describe("getRecursive round trips over gRPC", () => {
  const calls = { get: 0, getRecursive: 0, put: 0 };
  let server: DirectoryServiceServer;
  let client: GrpcDirectoryService;
  beforeAll(async () => {
    const { service } = memoryService();
    const counting: DirectoryService = Object.create(service, {
      get: { value: (...args: Parameters<DirectoryService["get"]>) => (calls.get++, service.get(...args)) },
      getRecursive: {
        value: (...args: Parameters<DirectoryService["getRecursive"]>) => (
          calls.getRecursive++,
          service.getRecursive(...args)
        ),
      },
      // The server reads through getRecursiveEncoded where the store has it: the same one walk.
      getRecursiveEncoded: {
        value: (...args: Parameters<NonNullable<DirectoryService["getRecursiveEncoded"]>>) => (
          calls.getRecursive++,
          service.getRecursiveEncoded!(...args)
        ),
      },
      putMultipleStart: {
        value: (...args: Parameters<DirectoryService["putMultipleStart"]>) => (
          calls.put++,
          service.putMultipleStart(...args)
        ),
      },
    });
    server = createDirectoryServiceServer(counting, { listen: { host: "127.0.0.1", port: 0 } });
    await server.listen();
    client = GrpcDirectoryService.fromUrl(server.url!);
  });
  afterAll(async () => {
    await client?.close();
    await server?.close({ deadlineMs: 1000 });
  });

  async function countedRead(root: Parameters<DirectoryService["getRecursive"]>[0]): Promise<number> {
    calls.get = calls.getRecursive = calls.put = 0;
    let n = 0;
    for await (const _ of client.getRecursive(root)) n++;
    return n;
  }

  it("a 1 000-deep chain is one call", async () => {
    const tree = deepChain(1000);
    await upload(client, tree.directories);
    expect(await countedRead(tree.root)).toBe(1000);
    expect(calls).toEqual({ get: 0, getRecursive: 1, put: 0 });
  });

  it("a directory of 20 000 entries (4 000 of them directories) is one call", async () => {
    const tree = wideDirectory(20_000);
    await upload(client, tree.directories);
    expect(await countedRead(tree.root)).toBe(2);
    expect(calls).toEqual({ get: 0, getRecursive: 1, put: 0 });
  });
});
