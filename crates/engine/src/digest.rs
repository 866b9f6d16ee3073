//! Digests shared by the engine, the edge and the CLI: lower-case hex, HMAC-SHA256 (built
//! in one place), the snapshot checksum, and comparison in constant time. A leaf: it
//! imports nothing of this crate.

use core::hash::Hasher;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use siphasher::sip::SipHasher24;

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    mac(key, parts)
        .map(|m| m.finalize().into_bytes().into())
        .unwrap_or([0; 32])
}

/// Whether `tag` is the HMAC-SHA256 of `parts` under `key`, compared in constant time.
pub fn hmac_verify(key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    mac(key, parts).is_some_and(|m| m.verify_slice(tag).is_ok())
}

/// The one place an HMAC is built. HMAC takes a key of any length (a long key is hashed
/// first), so `None` is never returned in practice.
fn mac(key: &[u8], parts: &[&[u8]]) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).ok()?;
    for p in parts {
        m.update(p);
    }
    Some(m)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// Decodes lower- or upper-case hex; `None` for an odd length or a non-hex character.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// The checksum of a packed snapshot's payload (16 hex digits): SipHash-2-4 under the
/// published bucketing key of `edgeflags/checksum ‖ 0x1F ‖ payload`, the same function
/// as a bucket's hash with the salt `edgeflags/checksum` (pinned by a test).
pub fn checksum(payload: &str) -> String {
    let mut h = SipHasher24::new_with_key(b"edgeflags/bucket");
    h.write(b"edgeflags/checksum");
    h.write(&[0x1f]);
    h.write(payload.as_bytes());
    format!("{:016x}", h.finish())
}

/// Equality that takes the same time wherever the inputs differ (for secrets compared
/// with what a client sent).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 15, 16, 255]), "000f10ff");
        assert_eq!(unhex("000F10ff"), Some(vec![0, 15, 16, 255]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let tag = hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex(&tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hmac_verify(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &tag
        ));
        assert!(!hmac_verify(
            b"Jeff",
            &[b"what do ya want for nothing?"],
            &tag
        ));
        // Keys longer than a block are fine.
        assert_ne!(hmac(&[7u8; 200], &[b"x"]), hmac(&[7u8; 199], &[b"x"]));
    }

    #[test]
    fn checksum_is_the_bucket_hash_with_its_salt() {
        use core::hash::Hasher;
        // Every length to 80 bytes and a payload of several kilobytes (what a store part
        // holds), against the `siphasher` crate and the bucket hash's own function.
        let long: String = (0..6000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        for p in (0..=80)
            .map(|n| &long[..n])
            .chain([&long[..], "efb3.some payload"])
        {
            let mut h = siphasher::sip::SipHasher24::new_with_key(b"edgeflags/bucket");
            h.write(b"edgeflags/checksum");
            h.write(&[0x1f]);
            h.write(p.as_bytes());
            let want = format!("{:016x}", h.finish());
            assert_eq!(checksum(p), want, "{} bytes", p.len());
            assert_eq!(
                want,
                format!("{:016x}", crate::bucket::hash64("edgeflags/checksum", p))
            );
        }
        // Pinned: computed by docs/bucketing_reference.py, an implementation of its own
        // (`hash64("edgeflags/checksum", payload)`).
        assert_eq!(checksum("efb3.some payload"), "bbc3fee6c156d688");
        assert_eq!(checksum(&long), "b7c7359712fb7e90");
    }

    #[test]
    fn constant_time_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
