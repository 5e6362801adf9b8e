"""The yardstick for castore's per-call bench (packages/bench/src/per-call.ts):
a python grpcio client's warm calls against a tvix.castore.v1 server.

    /usr/bin/python3 warm_calls.py HOST:PORT DIGEST_HEX CALLS ROUNDS

One channel, warmed up first; then, per round, CALLS sequential Get calls of
DIGEST_HEX (non-recursive, read to the end of the stream) and CALLS
sequential Put calls of one new small directory each (a file whose digest
holds a counter). Prints one JSON object: the seconds of every round of each.
Uses the generated stubs of reference/python (compiled at start-up).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "reference", "python"))
import grpc  # noqa: E402  (python3-grpcio)
import proto_stubs  # noqa: E402


def main():
    target, digest_hex, calls, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    castore_pb2, rpc_pb2, rpc_grpc = proto_stubs.load()
    channel = grpc.insecure_channel(target)
    stub = rpc_grpc.DirectoryServiceStub(channel)
    request = rpc_pb2.GetDirectoryRequest(digest=bytes.fromhex(digest_hex), recursive=False)
    counter = [int.from_bytes(os.urandom(4), "big") << 32]

    def get():
        n = sum(1 for _ in stub.Get(request))
        if n != 1:
            raise RuntimeError(f"Get answered {n} directories, expected 1")

    def put():
        counter[0] += 1
        file = castore_pb2.FileNode(name=b"f", digest=counter[0].to_bytes(32, "big"), size=1)
        stub.Put(iter([castore_pb2.Directory(files=[file])]))

    for _ in range(max(50, calls // 10)):  # warm-up: the connection, both paths
        get()
        put()
    out = {"get": [], "put": []}
    for _ in range(rounds):
        for name, call in (("get", get), ("put", put)):
            start = time.perf_counter()
            for _ in range(calls):
                call()
            out[name].append(time.perf_counter() - start)
    channel.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
