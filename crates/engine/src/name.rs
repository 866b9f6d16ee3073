//! The strings a snapshot holds (flag keys, variant names, attributes, values), each a
//! range of a text it shares.

use std::sync::Arc;

use crate::context::{order, same};

/// A name or string value held by a snapshot: shared, so that a snapshot holds each
/// distinct string once however many flags repeat it (variant names, attributes, country
/// codes). A name is a range of a shared text: compile makes one text per distinct
/// string, and decoding a packed snapshot one text for its whole string table, so that a
/// fresh instance makes one allocation for every string of its flags, not one per string
/// (in wasm, an allocation of a short string costs about 95 ns; issue 25). Compared,
/// ordered, hashed and printed as the string it is.
///
/// Invariant (what [`Name::as_str`]'s unchecked slice rests on): `start..end` is a range
/// of `text` on character boundaries. Only `Name::within`, which checks it, and
/// `From<&str>`, which takes the whole text (or nothing), make a name; the fields are
/// private to this module and no method changes them.
#[derive(Clone)]
pub struct Name {
    text: Arc<str>,
    start: u32,
    end: u32,
}

impl Name {
    /// The range `start..end` of `text`, when that range is a string of it (within it,
    /// on character boundaries, and addressable by `u32`).
    pub(crate) fn within(text: &Arc<str>, start: usize, end: usize) -> Option<Name> {
        text.get(start..end)?;
        Some(Name {
            text: Arc::clone(text),
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    /// Whether this is the same range of the same text as `other` (one copy, shared).
    #[cfg(test)]
    pub(crate) fn is(&self, other: &Name) -> bool {
        self.shares_text(other) && (self.start, self.end) == (other.start, other.end)
    }

    /// Whether this and `other` are ranges of one text.
    #[cfg(test)]
    pub(crate) fn shares_text(&self, other: &Name) -> bool {
        Arc::ptr_eq(&self.text, &other.text)
    }

    /// The string.
    #[inline(always)]
    #[allow(unsafe_code)]
    pub fn as_str(&self) -> &str {
        debug_assert!(
            self.text
                .get(self.start as usize..self.end as usize)
                .is_some()
        );
        // SAFETY: the type's invariant: `within` and `From` are the only ways to make a
        // name; `within` checks the range with `str::get`, `From` takes the whole text
        // (or nothing, past `u32::MAX` bytes); the fields are private to this module and
        // never change, and the text is immutable. Unchecked, because
        // evaluation reads names on its hot path (a flag's key, a clause's attribute, a
        // variant's name): the checked slice cost a typical flag 5 ns of its 56 and a
        // matching rule 5.5 of 29 (criterion, alternating runs).
        unsafe {
            self.text
                .get_unchecked(self.start as usize..self.end as usize)
        }
    }
}

impl From<&str> for Name {
    /// A name with a text of its own. (A string longer than `u32::MAX` bytes, which no
    /// flag file can hold within the store's limits, would be cut to nothing.)
    fn from(s: &str) -> Name {
        let end = u32::try_from(s.len()).unwrap_or(0);
        Name {
            text: Arc::from(s),
            start: 0,
            end,
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    #[inline(always)]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        same(self.as_str(), other.as_str())
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> std::cmp::Ordering {
        order(self.as_str(), other.as_str())
    }
}

impl std::hash::Hash for Name {
    /// As the string hashes, so that a set of names can be searched by `&str`.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn a_range_is_a_name_only_when_it_is_a_string_of_the_text() {
        let text: Arc<str> = Arc::from("3key7東京");
        assert_eq!(Name::within(&text, 1, 4).as_deref(), Some("key"));
        assert_eq!(Name::within(&text, 5, 11).as_deref(), Some("東京"));
        assert_eq!(Name::within(&text, 11, 11).as_deref(), Some(""));
        // Past the end, backwards, or inside a character: no name.
        assert!(Name::within(&text, 5, 12).is_none());
        assert!(Name::within(&text, 4, 1).is_none());
        assert!(Name::within(&text, 6, 11).is_none());
        assert!(Name::within(&text, 5, 7).is_none());
        assert_eq!(&*Name::from("東京"), "東京");
        assert_eq!(&*Name::from(""), "");
    }

    #[test]
    fn every_range_within_agrees_with_str_get() {
        // Every start and end over a text of one-, two-, three- and four-byte characters.
        let text: Arc<str> = Arc::from("a\u{e9}\u{6771}\u{1F600}b\u{0}");
        for start in 0..=text.len() + 1 {
            for end in 0..=text.len() + 1 {
                let name = Name::within(&text, start, end);
                assert_eq!(name.as_deref(), text.get(start..end), "{start}..{end}");
            }
        }
    }

    #[test]
    fn names_compare_order_and_hash_as_their_strings() {
        let text: Arc<str> = Arc::from("flag-001flag-000a");
        let cut = |a, b| Name::within(&text, a, b).unwrap_or_else(|| Name::from("?"));
        let (one, zero, a) = (cut(0, 8), cut(8, 16), cut(16, 17));
        assert_eq!(zero, Name::from("flag-000"));
        assert_ne!(zero, one);
        assert!(a < zero && zero < one);
        assert_eq!(format!("{one} {one:?}"), "flag-001 \"flag-001\"");
        let set: HashSet<Name> = [one.clone(), a.clone()].into_iter().collect();
        assert!(set.contains("flag-001") && set.contains("a") && !set.contains("flag-000"));
        assert!(one.shares_text(&zero) && !one.is(&zero) && one.is(&one.clone()));
    }
}
