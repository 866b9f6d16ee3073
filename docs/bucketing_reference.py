#!/usr/bin/env python3
"""An independent implementation of edgeflags bucketing (docs/bucketing.md), in plain
Python, so that other SDKs and reviewers can check the published vectors without Rust.

    python3 docs/bucketing_reference.py SALT VALUE         # prints hash and bucket
    python3 docs/bucketing_reference.py SALT VALUE SLOTS   # and the slot in a layer of SLOTS
    python3 docs/bucketing_reference.py --vectors          # prints the vectors of bucketing.md
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


def units(percent) -> int:
    """A weight (a percentage with at most three decimals) in buckets."""
    return round(percent * BUCKETS / 100)


def layer_salt(name: str) -> str:
    return "layer:" + name


def holdout_salt(name: str) -> str:
    return "holdout:" + name


def slot(salt: str, value: str, slots: int) -> int:
    """The slot of a user in a layer of `slots` slots (a divisor of BUCKETS)."""
    assert slots > 0 and BUCKETS % slots == 0
    return bucket(salt, value) // (BUCKETS // slots)


def held_out(salt: str, value: str, weight) -> bool:
    """Whether a holdout of `weight` percent holds the user out."""
    return bucket(salt, value) < units(weight)


def in_ramp(salt: str, value: str, live_weight) -> bool:
    """Whether a ramp whose live step has `live_weight` percent serves the user its variant."""
    return bucket(salt, value) < units(live_weight)


VECTORS = [
    ("checkout", "user-1"), ("checkout", "user-2"), ("checkout", "user-42"), ("checkout", ""),
    ("banner", "user-1"), ("new-search", "u-beta-1"), ("rollout", "42"), ("rollout", "-7"),
    ("s", "東京"), ("salt.with.dots", "a.b"), ("", "only-value"), ("", ""),
]

# (layer name, value, slots): layer slots under the default salt `layer:NAME`.
SLOT_VECTORS = [
    ("pricing", "user-1", 100), ("pricing", "user-2", 100), ("pricing", "user-42", 100),
    ("pricing", "user-1", 1000), ("pricing", "user-1", 10), ("search", "user-1", 100),
    ("pricing", "user-124993", 100), ("pricing", "user-101580", 100),
]

# (holdout name, value, weight): holdouts under the default salt `holdout:NAME`.
HOLDOUT_VECTORS = [
    ("q4-2026", "user-1", 5), ("q4-2026", "user-2", 5), ("q4-2026", "user-42", 5),
    ("q4-2026", "user-7", 5), ("q4-2026", "user-20", 5), ("q4-2026", "user-43", 5),
    ("q4-2026", "user-15519", 5), ("q4-2026", "user-28544", 5), ("global", "user-1", 10),
]

if __name__ == "__main__":
    # The standard SipHash-2-4 test vector (key 00..0f, empty message) guards this code.
    assert siphash24(bytes(range(16)), b"") == 0x726FDB47DD0E0E31
    if sys.argv[1:2] == ["--vectors"]:
        for salt, value in VECTORS:
            print(f"| `{salt}` | `{value}` | `{hash64(salt, value):016x}` | {bucket(salt, value)} |")
        print()
        for name, value, slots in SLOT_VECTORS:
            s = layer_salt(name)
            print(f"| `{s}` | `{value}` | {slots} | {bucket(s, value)} | {slot(s, value, slots)} |")
        print()
        for name, value, weight in HOLDOUT_VECTORS:
            s = holdout_salt(name)
            out = "held out" if held_out(s, value, weight) else "not held out"
            print(f"| `{s}` | `{value}` | {weight} % | {bucket(s, value)} | {out} |")
    elif len(sys.argv) == 3:
        print(f"{hash64(sys.argv[1], sys.argv[2]):016x} {bucket(sys.argv[1], sys.argv[2])}")
    elif len(sys.argv) == 4:
        salt, value, slots = sys.argv[1], sys.argv[2], int(sys.argv[3])
        print(f"{hash64(salt, value):016x} {bucket(salt, value)} slot {slot(salt, value, slots)}")
    else:
        print(__doc__)
