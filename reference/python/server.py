#!/usr/bin/env python3
"""An independent tvix.castore.v1 DirectoryService in Python, for testing the
conformance suite against a server castore did not write.

    /usr/bin/python3 reference/python/server.py [--reject-status INVALID_ARGUMENT|INTERNAL] [--defect NAME]...

Listens on 127.0.0.1 (--port, default 0: any free port), keeps directories in
memory, and prints the port it listens on, alone on a line of stdout, once it
is ready. It sends no castore-error-code trailer: like tvix or snix, its
rejections are a bare status (INVALID_ARGUMENT by default; tvix answers
INTERNAL) with a plain message. The contract is docs/spec.md; contract.py
holds the rules.

--defect NAME (repeatable) breaks the server on purpose, so the tests can check
that `castore conformance` notices; the defects are listed below (DEFECTS).
"""

import argparse
import sys
import threading
from collections import deque
from concurrent import futures

import grpc

import proto_stubs
from contract import Rejected, Upload, encode_directory

DEFECTS = {
    "children-first": "recursive Get sends the directories in reverse breadth-first order: leaves first, the root last",
    "accept-dangling": "Put accepts a directory whose child was not sent earlier in the stream",
    "corrupt-get": "Get alters the first entry of every non-empty directory it returns (size + 1, or the target)",
    "duplicate-subtree": "recursive Get sends a directory each time it is referred to, so shared subtrees come twice",
    "wrong-root": "Put answers the digest of the first directory sent instead of the root's",
    "no-size-check": "Put does not compare a DirectoryNode's size with its child",
    "accept-unsorted": "Put accepts lists whose names are not sorted (duplicates are still refused)",
    "drop-child": "recursive Get leaves out the last directory of the closure",
    "accept-bad-names": "Put accepts names that are empty, '.', '..', over 255 bytes, or hold '/' or NUL",
    "accept-disconnected": "Put accepts an upload where several directories are referred to by no other",
    "accept-bad-targets": "Put accepts symlink targets that are empty, over 4095 bytes, or hold NUL",
    "get-ignores-recursive": "a Get that is not recursive streams the whole closure anyway",
}


class MemoryStore:
    """digest -> canonical bytes; an upload becomes visible all at once."""

    def __init__(self):
        self._lock = threading.Lock()
        self._directories = {}

    def get(self, digest):
        with self._lock:
            return self._directories.get(digest)

    def put_all(self, directories):
        with self._lock:
            for digest, d in directories:
                self._directories.setdefault(digest, encode_directory(d))


class DirectoryService:
    def __init__(self, pb, reject_status, defects):
        self.pb = pb
        self.store = MemoryStore()
        self.reject_status = reject_status
        self.defects = defects

    def _load(self, digest):
        raw = self.store.get(digest)
        return None if raw is None else self.pb.Directory.FromString(raw)

    def _corrupt(self, d):
        if d.files:
            d.files[0].size += 1
        elif d.directories:
            d.directories[0].size += 1
        elif d.symlinks:
            d.symlinks[0].target += b"~"
        return d

    def _closure_order(self, root, context):
        """Breadth first, root first, each digest once, in the order the parents' lists name them (spec §3.2)."""
        order, queue, seen = [], deque([root]), {root}
        while queue:
            digest = queue.popleft()
            d = self._load(digest)
            if d is None:
                context.abort(grpc.StatusCode.INTERNAL, f"directory {digest.hex()} below root {root.hex()} is missing")
            order.append(d)
            for node in d.directories:
                child = bytes(node.digest)
                if child not in seen or "duplicate-subtree" in self.defects:
                    seen.add(child)
                    queue.append(child)
        if "children-first" in self.defects:
            order.reverse()
        if "drop-child" in self.defects and len(order) > 1:
            order.pop()
        return order

    def Get(self, request, context):
        if request.WhichOneof("by_what") != "digest":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "GetDirectoryRequest has no digest")
        digest = bytes(request.digest)
        if len(digest) != 32:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"digest is {len(digest)} bytes, not 32")
        if self.store.get(digest) is None:
            # tvix's answer for an absent root, recursive or not (castore sends an empty stream when recursive).
            context.abort(grpc.StatusCode.NOT_FOUND, f"directory {digest.hex()} not found")
        recursive = request.recursive or "get-ignores-recursive" in self.defects
        directories = self._closure_order(digest, context) if recursive else [self._load(digest)]
        for d in directories:
            yield self._corrupt(d) if "corrupt-get" in self.defects else d

    def Put(self, request_iterator, context):
        upload = Upload(self.defects)
        try:
            # A cancelled or broken stream raises here, and nothing of it is stored.
            for index, d in enumerate(request_iterator):
                upload.add(d, index)
            root = upload.finish()
        except Rejected as e:
            context.abort(self.reject_status, str(e))
        self.store.put_all(upload.received.items())
        return self.pb.PutDirectoryResponse(root_digest=root)


def main(argv=None):
    defects_help = "defects (--defect NAME):\n" + "\n".join(f"  {k:22} {v}" for k, v in sorted(DEFECTS.items()))
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=defects_help, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default 0: any free port)")
    parser.add_argument(
        "--reject-status",
        choices=["INVALID_ARGUMENT", "INTERNAL"],
        default="INVALID_ARGUMENT",
        help="the status of a rejected upload (tvix answers INTERNAL)",
    )
    parser.add_argument(
        "--defect",
        action="append",
        default=[],
        choices=sorted(DEFECTS),
        metavar="NAME",
        help="break the server on purpose (repeatable; listed below)",
    )
    args = parser.parse_args(argv)

    castore_pb2, rpc_directory_pb2, rpc_directory_pb2_grpc = proto_stubs.load()

    class Messages:
        Directory = castore_pb2.Directory
        PutDirectoryResponse = rpc_directory_pb2.PutDirectoryResponse

    service = DirectoryService(Messages, getattr(grpc.StatusCode, args.reject_status), frozenset(args.defect))
    # Streaming calls hold a worker thread each: enough for the suite's 32 concurrent uploads.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    rpc_directory_pb2_grpc.add_DirectoryServiceServicer_to_server(service, server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    sys.exit(main())
