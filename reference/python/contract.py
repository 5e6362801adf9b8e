"""The tvix.castore.v1 directory contract of docs/spec.md, written plainly:
canonical encoding and digests (§1), validation (§2), and the closure rules of
an upload (§3.1).

Works on the generated protobuf messages (castore_pb2.Directory). A broken rule
raises Rejected with a message naming what was wrong; the server turns it into
a gRPC status. `defects` (a set of names, see server.py) switches single rules
off on purpose, so the tests can check that the conformance suite notices.
"""

from blake3 import blake3

MAX_NAME_BYTES = 255
MAX_TARGET_BYTES = 4095
MAX_UINT64 = (1 << 64) - 1


class Rejected(Exception):
    """An upload or request that breaks the contract."""


# --- §1 canonical encoding and digest ---------------------------------------


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number, value):
    # Proto3 leaves defaults out: empty bytes are not written.
    return b"" if not value else _varint(number << 3 | 2) + _varint(len(value)) + value


def _uint_field(number, value):
    return b"" if not value else _varint(number << 3 | 0) + _varint(value)


def _message_field(number, encoded):
    # A nested message is written even when empty (it is a list element).
    return _varint(number << 3 | 2) + _varint(len(encoded)) + encoded


def encode_directory(d):
    """The canonical protobuf bytes: fields in field-number order, defaults left out, minimal varints."""
    out = bytearray()
    for n in d.directories:
        out += _message_field(1, _bytes_field(1, n.name) + _bytes_field(2, n.digest) + _uint_field(3, n.size))
    for n in d.files:
        body = _bytes_field(1, n.name) + _bytes_field(2, n.digest) + _uint_field(3, n.size)
        body += _uint_field(4, 1 if n.executable else 0)
        out += _message_field(2, body)
    for n in d.symlinks:
        out += _message_field(3, _bytes_field(1, n.name) + _bytes_field(2, n.target))
    return bytes(out)


def digest_of(d):
    return blake3(encode_directory(d))


def has_unknown_fields(d):
    # protobuf keeps unknown fields and writes them back; the canonical encoder
    # above knows only the contract's fields. Different bytes = unknown fields
    # somewhere (top level or in a node), whose digest would change on re-encoding.
    return d.SerializeToString(deterministic=True) != encode_directory(d)


def entry_count(d):
    return len(d.directories) + len(d.files) + len(d.symlinks)


def canonical_size(d):
    """§1.1: n(X) + s(X), the number of nodes below X."""
    return entry_count(d) + sum(n.size for n in d.directories)


# --- §2 validation -------------------------------------------------------------


def _show(name):
    return repr(bytes(name))[1:]


def _check_name(name, where, defects):
    if "accept-bad-names" in defects:
        return
    if name == b"":
        raise Rejected(f"invalid name in {where}: is empty")
    if name in (b".", b".."):
        raise Rejected(f"invalid name {_show(name)} in {where}: is . or ..")
    if len(name) > MAX_NAME_BYTES:
        raise Rejected(f"invalid name in {where}: {len(name)} bytes, over {MAX_NAME_BYTES}")
    if b"/" in name:
        raise Rejected(f"invalid name {_show(name)} in {where}: contains '/'")
    if b"\0" in name:
        raise Rejected(f"invalid name {_show(name)} in {where}: contains NUL")


def validate(d, defects=frozenset()):
    """Rules 1 to 5 of §2."""
    seen = {}
    for list_name in ("directories", "files", "symlinks"):
        nodes = getattr(d, list_name)
        for i, node in enumerate(nodes):
            where = f"{list_name}[{i}]"
            _check_name(node.name, where, defects)
            # Rule 2: each list sorted strictly ascending on its own; no name twice across the lists.
            if i > 0 and "accept-unsorted" not in defects and not nodes[i - 1].name < node.name:
                raise Rejected(f"{where} {_show(node.name)} is not sorted after {_show(nodes[i - 1].name)}")
            if node.name in seen:
                raise Rejected(f"duplicate name {_show(node.name)} in {where}: also in {seen[node.name]}")
            seen[node.name] = where
            if list_name != "symlinks" and len(node.digest) != 32:
                raise Rejected(f"invalid digest in {where}: {len(node.digest)} bytes, not 32")
            if list_name == "symlinks" and "accept-bad-targets" not in defects:
                if node.target == b"":
                    raise Rejected(f"invalid target in {where} {_show(node.name)}: is empty")
                if len(node.target) > MAX_TARGET_BYTES:
                    raise Rejected(f"invalid target in {where}: {len(node.target)} bytes, over {MAX_TARGET_BYTES}")
                if b"\0" in node.target:
                    raise Rejected(f"invalid target in {where} {_show(node.name)}: contains NUL")
    if canonical_size(d) > MAX_UINT64:
        raise Rejected("the directory's size overflows uint64")


# --- §3.1 an upload ------------------------------------------------------------


class Upload:
    """One Put stream: directories leaves to root; nothing is stored until finish() succeeds."""

    def __init__(self, defects=frozenset()):
        self.defects = defects
        self.received = {}  # digest -> Directory, in the order first sent
        self.referenced = set()
        self.first_digest = None

    def add(self, d, index):
        where = f"directory #{index} of the upload"
        if has_unknown_fields(d):
            raise Rejected(f"{where}: carries unknown fields")
        digest = digest_of(d)
        if digest in self.received:
            return  # a re-sent directory is ignored, wherever it comes
        try:
            validate(d, self.defects)
        except Rejected as e:
            raise Rejected(f"{where} ({digest.hex()}) failed validation: {e}") from None
        for i, node in enumerate(d.directories):
            child = self.received.get(bytes(node.digest))
            if child is None:
                if "accept-dangling" in self.defects:
                    continue
                raise Rejected(
                    f"{where} ({digest.hex()}) refers to {node.digest.hex()} in directories[{i}] "
                    f"{_show(node.name)}, which was not sent earlier in this upload"
                )
            low = canonical_size(child)
            high = 2 * entry_count(child) + sum(n.size for n in child.directories)
            # §1.1: canonical n+s up to the legacy 2n+s, both accepted; anything else is not.
            if "no-size-check" not in self.defects and not low <= node.size <= high:
                raise Rejected(
                    f"{where} ({digest.hex()}) declares size {node.size} for directories[{i}] "
                    f"{_show(node.name)}, but its size is {low} (accepted up to {high})"
                )
        for node in d.directories:
            self.referenced.add(bytes(node.digest))
        self.received[digest] = d
        if self.first_digest is None:
            self.first_digest = digest

    def finish(self):
        """The root's digest: the one directory of the upload that no other refers to."""
        if not self.received:
            raise Rejected("empty upload")
        roots = [dg for dg in self.received if dg not in self.referenced]
        if len(roots) != 1 and "accept-disconnected" not in self.defects:
            shown = ", ".join(dg.hex() for dg in roots) or "none"
            raise Rejected(f"upload is not connected: {len(roots)} directories are referred to by no other ({shown})")
        root = list(self.received)[-1] if "accept-disconnected" in self.defects else roots[0]
        return self.first_digest if "wrong-root" in self.defects else root
