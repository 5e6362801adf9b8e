"""Compiles the repository's tvix.castore.v1 .proto files with grpc_tools.protoc
into a temporary directory and imports the generated modules.

Nothing generated is committed: the .proto files in proto/ are the only source,
so this server cannot drift from the messages castore speaks.
"""

import atexit
import os
import shutil
import sys
import tempfile

PROTO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto"))
PROTO_FILES = ["tvix/castore/v1/castore.proto", "tvix/castore/v1/rpc_directory.proto"]


def load():
    """Returns (castore_pb2, rpc_directory_pb2, rpc_directory_pb2_grpc)."""
    from grpc_tools import protoc  # python3-grpc-tools

    out = tempfile.mkdtemp(prefix="castore-reference-proto-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    args = ["protoc", f"-I{PROTO_ROOT}", f"--python_out={out}", f"--grpc_python_out={out}", *PROTO_FILES]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO_FILES} under {PROTO_ROOT}")
    sys.path.insert(0, out)
    from tvix.castore.v1 import castore_pb2, rpc_directory_pb2, rpc_directory_pb2_grpc

    return castore_pb2, rpc_directory_pb2, rpc_directory_pb2_grpc
