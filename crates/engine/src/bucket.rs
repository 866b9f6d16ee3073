//! Deterministic bucketing: SipHash-2-4 of the salt and the bucketing value, reduced to
//! `0..BUCKETS`. The exact algorithm is fixed by `docs/bucketing.md` and pinned by golden
//! vectors in the tests: changing anything here moves users between variants.

use core::hash::Hasher;
use siphasher::sip::SipHasher24;

/// The 128-bit SipHash key, published: the ASCII bytes of `edgeflags/bucket`.
/// k0 is the little-endian u64 of the first eight bytes, k1 of the last eight.
pub const BUCKET_KEY: [u8; 16] = *b"edgeflags/bucket";

/// The byte between the salt and the bucketing value (ASCII unit separator).
pub const SEPARATOR: u8 = 0x1f;

/// Number of buckets: a bucket is in `0..BUCKETS`, so weights have a resolution of 0.001 %.
pub const BUCKETS: u32 = 100_000;

/// The raw 64-bit SipHash-2-4 of `salt ‖ 0x1F ‖ value` under [`BUCKET_KEY`].
pub fn hash64(salt: &str, value: &str) -> u64 {
    let mut h = SipHasher24::new_with_key(&BUCKET_KEY);
    h.write(salt.as_bytes());
    h.write(&[SEPARATOR]);
    h.write(value.as_bytes());
    h.finish()
}

/// The bucket, in `0..BUCKETS`, of `value` for a flag whose salt is `salt`:
/// `(hash64 * BUCKETS) >> 64`, a multiply-shift that keeps every bucket the same size
/// to within one part in 2^47.
pub fn bucket_of(salt: &str, value: &str) -> u32 {
    reduce(hash64(salt, value))
}

/// `(h * BUCKETS) >> 64` in 64-bit arithmetic: wasm has no 64×64→128 multiply, and the
/// 128-bit one is a library call. With `h = hi·2³² + lo`, the product is
/// `hi·B·2³² + lo·B`; both `hi·B` and `lo·B` fit in 64 bits (B < 2¹⁷), and adding
/// `(lo·B) >> 32` before the last shift loses nothing the exact result keeps.
fn reduce(h: u64) -> u32 {
    let b = u64::from(BUCKETS);
    let (hi, lo) = (h >> 32, h & 0xffff_ffff);
    ((hi * b + ((lo * b) >> 32)) >> 32) as u32
}

/// The bucketing hasher with a salt and the separator already absorbed, so that placing
/// a user hashes only their value. Same result as [`bucket_of`].
#[derive(Debug, Clone, Copy)]
pub struct Prefix(SipHasher24);

impl Prefix {
    /// The state after `salt ‖ 0x1F`.
    pub fn new(salt: &str) -> Prefix {
        let mut h = SipHasher24::new_with_key(&BUCKET_KEY);
        h.write(salt.as_bytes());
        h.write(&[SEPARATOR]);
        Prefix(h)
    }

    /// The bucket of `value`.
    pub fn bucket(&self, value: &str) -> u32 {
        let mut h = self.0;
        h.write(value.as_bytes());
        reduce(h.finish())
    }
}

/// Writes an integer the way the bucketing input spells it (decimal, `-` for negatives),
/// into a stack buffer, and returns the text.
pub(crate) fn integer_text(n: i64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let neg = n < 0;
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    core::str::from_utf8(&buf[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_64_bit_reduction_is_the_128_bit_one() {
        let exact = |h: u64| ((u128::from(h) * u128::from(super::BUCKETS)) >> 64) as u32;
        let mut h = 0x9e37_79b9_7f4a_7c15u64;
        for edge in [
            0,
            1,
            u64::MAX,
            u64::MAX - 1,
            1 << 32,
            (1 << 32) - 1,
            u64::MAX << 32,
        ] {
            assert_eq!(super::reduce(edge), exact(edge), "{edge:#x}");
        }
        for _ in 0..100_000 {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            assert_eq!(super::reduce(h), exact(h), "{h:#x}");
        }
    }

    use super::*;

    #[test]
    fn pieces_hash_as_the_concatenation() {
        let mut h = SipHasher24::new_with_key(&BUCKET_KEY);
        h.write(b"banner\x1fuser-42");
        assert_eq!(h.finish(), hash64("banner", "user-42"));
    }

    #[test]
    fn a_prefix_buckets_like_the_whole_input() {
        for (salt, value) in [
            ("checkout", "user-1"),
            ("", ""),
            ("s", "東京"),
            ("long-salt-with-many-bytes", "v"),
        ] {
            assert_eq!(Prefix::new(salt).bucket(value), bucket_of(salt, value));
        }
    }

    #[test]
    fn integer_text_spells_decimal() {
        let mut b = [0u8; 20];
        assert_eq!(integer_text(0, &mut b), "0");
        assert_eq!(integer_text(42, &mut b), "42");
        assert_eq!(integer_text(-7, &mut b), "-7");
        assert_eq!(integer_text(i64::MIN, &mut b), "-9223372036854775808");
        assert_eq!(integer_text(i64::MAX, &mut b), "9223372036854775807");
    }
}
