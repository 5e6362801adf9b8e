import { describe, expect, it } from "vitest";
import { directoryDigest } from "./canonical.js";
import { CorruptionError } from "./errors.js";
import { DIRECTORY_COMPLICATED as COMPLICATED, DIRECTORY_WITH_KEEP as WITH_KEEP } from "./fixtures.js";
import { directorySize, makeDirectoryNode, type Node } from "./model.js";
import { pathComponents, traverseTo } from "./traverse.js";
import { mapService } from "./test-memory-store.js";

describe("traverseTo (spec §7 item 13)", async () => {
  const { service, store } = mapService();
  const p = service.putMultipleStart();
  await p.put(WITH_KEEP);
  await p.put(COMPLICATED);
  await p.close();
  const root: Node = {
    kind: "directory",
    node: makeDirectoryNode("doesntmatter", directoryDigest(COMPLICATED), directorySize(COMPLICATED)),
  };
  const keepDir: Node = { kind: "directory", node: COMPLICATED.directories[0] };
  const keepFile: Node = { kind: "file", node: WITH_KEEP.files[0] };

  const table: [string, Node | undefined][] = [
    ["", root],
    ["/", root],
    ["keep", keepDir],
    ["keep/.keep", keepFile],
    ["/keep/.keep", keepFile],
    ["keep//.keep/", keepFile],
    ["void", undefined],
    ["//v/oid", undefined],
    ["keep/.keep/foo", undefined],
    ["aa/x", undefined],
    [".", undefined],
    ["keep/..", undefined],
  ];
  for (const [path, expected] of table) {
    it(`${JSON.stringify(path)} → ${expected ? expected.kind : "undefined"}`, async () => {
      expect(await traverseTo(service, root, path)).toEqual(expected);
    });
  }
  it("the symlink itself is found", async () => {
    expect(await traverseTo(service, root, "aa")).toEqual({ kind: "symlink", node: COMPLICATED.symlinks[0] });
  });
  it("a directory node whose directory is not stored is corruption, not undefined", async () => {
    const missing: Node = { kind: "directory", node: makeDirectoryNode("x", new Uint8Array(32).fill(7), 0) };
    await expect(traverseTo(service, missing, "a")).rejects.toThrow(CorruptionError);
    expect(store.map.size).toBe(2);
  });
  it("splits paths on slashes as bytes", () => {
    expect(pathComponents(Uint8Array.from([0x2f, 0xff, 0x2f, 0x2f, 0x61]))).toEqual([
      Uint8Array.from([0xff]),
      Uint8Array.from([0x61]),
    ]);
  });
});
