/**
 * A small tree in a memory store for the web port's tests: nested
 * directories, a file whose name is not UTF-8, a symlink, an executable, an
 * empty file and a blob of several chunks; a ref names the root.
 */
import {
  type Digest,
  directoryDigest,
  directorySize,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
  makeSymlinkNode,
} from "@castore-ts/core";
import { type MemoryStore, openMemoryStore } from "@castore-ts/backend-memory";

export interface TestTree {
  store: MemoryStore;
  root: Digest;
  sub: Digest;
  hello: Uint8Array;
  big: Uint8Array;
  latin1: Uint8Array;
}

/** Deterministic pseudo-random bytes (xorshift), so chunk boundaries fall the same way every run. */
export function pseudoRandomBytes(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function putBlob(store: MemoryStore, bytes: Uint8Array): Promise<Digest> {
  const writer = store.blobs.openWriter();
  await writer.write(bytes);
  return (await writer.close()).digest;
}

export async function makeTestTree(): Promise<TestTree> {
  const store = openMemoryStore();
  const hello = new TextEncoder().encode("hello, castore\n");
  const big = pseudoRandomBytes(3 * 1024 * 1024 + 17);
  const latin1 = new TextEncoder().encode("caf\xe9 in latin-1\n");
  const helloDigest = await putBlob(store, hello);
  const bigDigest = await putBlob(store, big);
  const latin1Digest = await putBlob(store, latin1);
  const emptyDigest = await putBlob(store, new Uint8Array(0));
  const deep = makeDirectory({ files: [makeFileNode("deep.txt", helloDigest, hello.length)] });
  const putter = store.directories.putMultipleStart();
  await putter.put(deep);
  const deepDigest = directoryDigest(deep);
  const subDir = makeDirectory({
    directories: [makeDirectoryNode("deeper", deepDigest, directorySize(deep))],
    files: [makeFileNode("big.bin", bigDigest, big.length)],
  });
  await putter.put(subDir);
  const sub = directoryDigest(subDir);
  const rootDir = makeDirectory({
    directories: [makeDirectoryNode("sub", sub, directorySize(subDir))],
    files: [
      makeFileNode(Uint8Array.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]), latin1Digest, latin1.length), // "caf\xe9.txt"
      makeFileNode("empty", emptyDigest, 0),
      makeFileNode("hello.txt", helloDigest, hello.length),
      makeFileNode("run.sh", helloDigest, hello.length, true),
    ],
    symlinks: [makeSymlinkNode("link", "hello.txt")],
  });
  await putter.put(rootDir);
  const root = await putter.close();
  await store.refs.set("releases/latest", root);
  return { store, root, sub, hello, big, latin1 };
}
