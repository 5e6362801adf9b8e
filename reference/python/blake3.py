"""BLAKE3-256 in plain Python: the hash mode only, 32-byte output.

Written from the BLAKE3 paper's description (https://github.com/BLAKE3-team/BLAKE3-specs),
for the reference server, where directories are small; no dependency beyond the
standard library. Checked against the official test vectors and the b3sum binary
(test_blake3.py).
"""

import struct

_IV = (
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
    0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
)
_MSG_PERMUTATION = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
# The message word order of each of the 7 rounds: round r uses the permutation applied r times.
_SCHEDULE = []
_order = list(range(16))
for _ in range(7):
    _SCHEDULE.append(tuple(_order))
    _order = [_order[i] for i in _MSG_PERMUTATION]
del _order

CHUNK_START = 1 << 0
CHUNK_END = 1 << 1
PARENT = 1 << 2
ROOT = 1 << 3

BLOCK_LEN = 64
CHUNK_LEN = 1024
_MASK = 0xFFFFFFFF


def _compress(cv, block_words, counter, block_len, flags):
    """The compression function; returns the 16-word state (the first 8 words, XORed with the last 8, are the new CV)."""
    s = [
        cv[0], cv[1], cv[2], cv[3], cv[4], cv[5], cv[6], cv[7],
        _IV[0], _IV[1], _IV[2], _IV[3],
        counter & _MASK, (counter >> 32) & _MASK, block_len, flags,
    ]
    m = block_words

    def g(a, b, c, d, x, y):
        # The quarter-round: additions mod 2^32, rotations right by 16, 12, 8, 7.
        s[a] = (s[a] + s[b] + x) & _MASK
        t = s[d] ^ s[a]
        s[d] = ((t >> 16) | (t << 16)) & _MASK
        s[c] = (s[c] + s[d]) & _MASK
        t = s[b] ^ s[c]
        s[b] = ((t >> 12) | (t << 20)) & _MASK
        s[a] = (s[a] + s[b] + y) & _MASK
        t = s[d] ^ s[a]
        s[d] = ((t >> 8) | (t << 24)) & _MASK
        s[c] = (s[c] + s[d]) & _MASK
        t = s[b] ^ s[c]
        s[b] = ((t >> 7) | (t << 25)) & _MASK

    for o in _SCHEDULE:
        # Columns, then diagonals.
        g(0, 4, 8, 12, m[o[0]], m[o[1]])
        g(1, 5, 9, 13, m[o[2]], m[o[3]])
        g(2, 6, 10, 14, m[o[4]], m[o[5]])
        g(3, 7, 11, 15, m[o[6]], m[o[7]])
        g(0, 5, 10, 15, m[o[8]], m[o[9]])
        g(1, 6, 11, 12, m[o[10]], m[o[11]])
        g(2, 7, 8, 13, m[o[12]], m[o[13]])
        g(3, 4, 9, 14, m[o[14]], m[o[15]])
    for i in range(8):
        s[i] ^= s[i + 8]
        s[i + 8] ^= cv[i]
    return s


def _words(block):
    """A block of up to 64 bytes as 16 little-endian words, zero-padded."""
    return struct.unpack("<16I", block.ljust(BLOCK_LEN, b"\0"))


def _chunk_state(chunk, chunk_index, root):
    """Compresses one chunk's blocks; returns the last block's state (ROOT set when this chunk is the whole input)."""
    cv = _IV
    blocks = [chunk[i : i + BLOCK_LEN] for i in range(0, len(chunk), BLOCK_LEN)] or [b""]
    for i, block in enumerate(blocks):
        flags = 0
        if i == 0:
            flags |= CHUNK_START
        if i == len(blocks) - 1:
            flags |= CHUNK_END | (ROOT if root else 0)
            return _compress(cv, _words(block), chunk_index, len(block), flags)
        cv = _compress(cv, _words(block), chunk_index, BLOCK_LEN, flags)[:8]


def _parent_state(left_cv, right_cv, root):
    return _compress(_IV, tuple(left_cv) + tuple(right_cv), 0, BLOCK_LEN, PARENT | (ROOT if root else 0))


def _split(n):
    """The left subtree takes the largest power of two of chunks that leaves at least one for the right."""
    p = 1
    while p * 2 < n:
        p *= 2
    return p


def _subtree_state(data, first_chunk, root):
    n_chunks = max(1, -(-len(data) // CHUNK_LEN))
    if n_chunks == 1:
        return _chunk_state(data, first_chunk, root)
    left = _split(n_chunks)
    left_cv = _subtree_state(data[: left * CHUNK_LEN], first_chunk, False)[:8]
    right_cv = _subtree_state(data[left * CHUNK_LEN :], first_chunk + left, False)[:8]
    return _parent_state(left_cv, right_cv, root)


def blake3(data: bytes) -> bytes:
    """The 32-byte BLAKE3 hash of data."""
    state = _subtree_state(bytes(data), 0, True)
    return struct.pack("<8I", *state[:8])


if __name__ == "__main__":
    import sys

    print(blake3(sys.stdin.buffer.read()).hex())
