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

/// `(h * BUCKETS) >> 64`: one 64×64→128 multiply where the machine has it, and
/// [`reduce_in_64`] in wasm, which has none (its 128-bit multiply is a library call).
#[inline(always)]
fn reduce(h: u64) -> u32 {
    if cfg!(target_arch = "wasm32") {
        reduce_in_64(h)
    } else {
        ((u128::from(h) * u128::from(BUCKETS)) >> 64) as u32
    }
}

/// `(h * BUCKETS) >> 64` in 64-bit arithmetic. With `h = hi·2³² + lo`, the product is
/// `hi·B·2³² + lo·B`; both `hi·B` and `lo·B` fit in 64 bits (B < 2¹⁷), and adding
/// `(lo·B) >> 32` before the last shift loses nothing the exact result keeps (the tests
/// compare the two).
#[inline(always)]
fn reduce_in_64(h: u64) -> u32 {
    let b = u64::from(BUCKETS);
    let (hi, lo) = (h >> 32, h & 0xffff_ffff);
    ((hi * b + ((lo * b) >> 32)) >> 32) as u32
}

/// The bucketing hash with a salt and the separator already absorbed, so that placing a
/// user hashes only their value. Same result as [`bucket_of`] (the tests check it against
/// the `siphasher` crate over every salt and value length to 40 bytes).
///
/// This is SipHash-2-4 written out for one job: the state after the prefix is kept as
/// four words, the bytes of the prefix's last partial word, and their count, and
/// [`Prefix::bucket`] finishes the hash from there in one pass over the value. The crate's
/// general `Hasher::write` does the same work with a copy of its whole state and a call
/// that the compiler does not inline; this saves about a third of the hash's time
/// (issue 25, `docs/bench-results.md`). The crate still computes [`hash64`] and every
/// other hash of the engine.
#[derive(Debug, Clone, Copy)]
pub struct Prefix {
    v: [u64; 4],
    /// The prefix's bytes after its last full word, little-endian.
    tail: u64,
    /// How many bytes `tail` holds (0 to 7).
    ntail: usize,
    /// The prefix's length in bytes.
    len: usize,
}

impl Prefix {
    /// The state after `salt ‖ 0x1F`.
    pub fn new(salt: &str) -> Prefix {
        let k0 = u64::from_le_bytes(word(&BUCKET_KEY, 0));
        let k1 = u64::from_le_bytes(word(&BUCKET_KEY, 8));
        let mut v = [
            k0 ^ 0x736f_6d65_7073_6575,
            k1 ^ 0x646f_7261_6e64_6f6d,
            k0 ^ 0x6c79_6765_6e65_7261,
            k1 ^ 0x7465_6462_7974_6573,
        ];
        let bytes = salt.as_bytes();
        let mut i = 0;
        while i + 8 <= bytes.len() {
            absorb(&mut v, u64::from_le_bytes(word(bytes, i)));
            i += 8;
        }
        let rest = bytes.get(i..).unwrap_or_default();
        // The separator joins the salt's last partial word; when that fills it, the word
        // is absorbed.
        let tail = partial(rest) | (u64::from(SEPARATOR) << (8 * rest.len()));
        let (tail, ntail) = if rest.len() == 7 {
            absorb(&mut v, tail);
            (0, 0)
        } else {
            (tail, rest.len() + 1)
        };
        Prefix {
            v,
            tail,
            ntail,
            len: bytes.len() + 1,
        }
    }

    /// The bucket of `value`.
    #[inline]
    pub fn bucket(&self, value: &str) -> u32 {
        reduce(self.finish(value.as_bytes()))
    }

    /// SipHash-2-4 of the prefix followed by `bytes`.
    #[inline(always)]
    fn finish(&self, bytes: &[u8]) -> u64 {
        let mut v = self.v;
        let mut tail = self.tail;
        let mut rest = bytes;
        if self.ntail > 0 {
            let need = 8 - self.ntail;
            match rest.split_at_checked(need) {
                Some((head, after)) => {
                    // With eight bytes to read, one load: the bytes past `need` leave the
                    // word in the shift below.
                    let head = match rest.get(..8) {
                        Some(w) => u64::from_le_bytes(word(w, 0)),
                        None => partial(head),
                    };
                    absorb(&mut v, tail | (head << (8 * self.ntail)));
                    tail = 0;
                    rest = after;
                }
                None => {
                    tail |= partial(rest) << (8 * self.ntail);
                    rest = &[];
                }
            }
        }
        let mut words = rest.chunks_exact(8);
        for w in &mut words {
            absorb(&mut v, u64::from_le_bytes(word(w, 0)));
        }
        let r = words.remainder().len();
        // The last `r` bytes: when the value has eight, one load of its last eight,
        // shifted down.
        tail |= match bytes.len().checked_sub(8).and_then(|at| bytes.get(at..)) {
            Some(w) if r > 0 => u64::from_le_bytes(word(w, 0)) >> (8 * (8 - r)),
            _ => partial(words.remainder()),
        };
        let total = (self.len + bytes.len()) as u64;
        let b = tail | (total << 56);
        absorb(&mut v, b);
        v[2] ^= 0xff;
        for _ in 0..4 {
            round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

/// One message word through the two compression rounds of SipHash-2-4.
#[inline(always)]
fn absorb(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    round(v);
    round(v);
    v[0] ^= m;
}

/// One SipRound.
#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

/// The eight bytes at `i` (zeros where `bytes` ends early, which callers never ask for).
#[inline(always)]
fn word(bytes: &[u8], i: usize) -> [u8; 8] {
    bytes
        .get(i..i + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .unwrap_or_default()
}

/// Up to seven bytes as the low bytes of a little-endian word, read as at most three
/// loads (four, two and one bytes) rather than byte by byte.
#[inline(always)]
fn partial(bytes: &[u8]) -> u64 {
    let n = bytes.len().min(7);
    let mut out = 0u64;
    let mut i = 0;
    if n >= 4 {
        let w = bytes.get(..4).and_then(|w| <[u8; 4]>::try_from(w).ok());
        out = u64::from(u32::from_le_bytes(w.unwrap_or_default()));
        i = 4;
    }
    if n - i >= 2 {
        let w = bytes
            .get(i..i + 2)
            .and_then(|w| <[u8; 2]>::try_from(w).ok());
        out |= u64::from(u16::from_le_bytes(w.unwrap_or_default())) << (8 * i);
        i += 2;
    }
    if n > i {
        out |= u64::from(bytes.get(i).copied().unwrap_or(0)) << (8 * i);
    }
    out
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
            assert_eq!(super::reduce_in_64(edge), exact(edge), "{edge:#x}");
            assert_eq!(super::reduce(edge), exact(edge), "{edge:#x}");
        }
        for _ in 0..100_000 {
            h ^= h << 13;
            h ^= h >> 7;
            h ^= h << 17;
            assert_eq!(super::reduce_in_64(h), exact(h), "{h:#x}");
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
    fn the_prefix_continuation_is_the_crates_siphash_2_4() {
        // Every salt length to 40 bytes against every value length to 40 (every
        // alignment of the separator and the value's words), and non-ASCII bytes.
        let text: String = (0..40)
            .map(|i| char::from(b'!' + (i * 7 % 90) as u8))
            .collect();
        for s in 0..=40 {
            let salt = &text[..s];
            let prefix = Prefix::new(salt);
            for n in 0..=40 {
                let value = &text[40 - n..];
                assert_eq!(
                    prefix.finish(value.as_bytes()),
                    hash64(salt, value),
                    "{s} {n}"
                );
            }
            for value in ["東京", "é", "ünïcödé-üser-ïd-with-more-than-sixteen-bytes"] {
                assert_eq!(prefix.finish(value.as_bytes()), hash64(salt, value));
            }
        }
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
