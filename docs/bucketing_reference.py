#!/usr/bin/env python3
"""An independent implementation of edgeflags bucketing (docs/bucketing.md), in plain
Python, so that other SDKs and reviewers can check the published vectors without Rust.

    python3 docs/bucketing_reference.py SALT VALUE   # prints hash and bucket
    python3 docs/bucketing_reference.py --vectors    # prints the vectors of bucketing.md
"""
import sys

MASK = (1 << 64) - 1
KEY = b"edgeflags/bucket"
SEPARATOR = b"\x1f"
BUCKETS = 100_000


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & MASK


def siphash24(key: bytes, msg: bytes) -> int:
    k0 = int.from_bytes(key[0:8], "little")
    k1 = int.from_bytes(key[8:16], "little")
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]

    def rounds(n):
        for _ in range(n):
            v[0] = (v[0] + v[1]) & MASK; v[1] = _rotl(v[1], 13); v[1] ^= v[0]; v[0] = _rotl(v[0], 32)
            v[2] = (v[2] + v[3]) & MASK; v[3] = _rotl(v[3], 16); v[3] ^= v[2]
            v[0] = (v[0] + v[3]) & MASK; v[3] = _rotl(v[3], 21); v[3] ^= v[0]
            v[2] = (v[2] + v[1]) & MASK; v[1] = _rotl(v[1], 17); v[1] ^= v[2]; v[2] = _rotl(v[2], 32)

    end = len(msg) - len(msg) % 8
    for i in range(0, end, 8):
        m = int.from_bytes(msg[i:i + 8], "little")
        v[3] ^= m; rounds(2); v[0] ^= m
    b = ((len(msg) & 0xFF) << 56) | int.from_bytes(msg[end:], "little")
    v[3] ^= b; rounds(2); v[0] ^= b
    v[2] ^= 0xFF
    rounds(4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def hash64(salt: str, value: str) -> int:
    return siphash24(KEY, salt.encode() + SEPARATOR + value.encode())


def bucket(salt: str, value: str) -> int:
    return (hash64(salt, value) * BUCKETS) >> 64


VECTORS = [
    ("checkout", "user-1"), ("checkout", "user-2"), ("checkout", "user-42"), ("checkout", ""),
    ("banner", "user-1"), ("new-search", "u-beta-1"), ("rollout", "42"), ("rollout", "-7"),
    ("s", "東京"), ("salt.with.dots", "a.b"), ("", "only-value"), ("", ""),
]

if __name__ == "__main__":
    # The standard SipHash-2-4 test vector (key 00..0f, empty message) guards this code.
    assert siphash24(bytes(range(16)), b"") == 0x726FDB47DD0E0E31
    if sys.argv[1:2] == ["--vectors"]:
        for salt, value in VECTORS:
            print(f"| `{salt}` | `{value}` | `{hash64(salt, value):016x}` | {bucket(salt, value)} |")
    elif len(sys.argv) == 3:
        print(f"{hash64(sys.argv[1], sys.argv[2]):016x} {bucket(sys.argv[1], sys.argv[2])}")
    else:
        print(__doc__)
