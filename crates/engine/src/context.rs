//! The evaluation context: who is asking (the user key) and what is known about them
//! (country, device, language, time zone, traits, any custom attribute).

use crate::place::{Resolution, Source};
use crate::zone::Zone;

/// One attribute value. Strings cover what a request carries; numbers, booleans and
/// string lists come from OFREP bodies and trait profiles.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string.
    Str(String),
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// A list of strings: a clause matches when any element matches.
    List(Vec<String>),
}

impl AttrValue {
    /// Converts a JSON value; objects and `null` have no attribute form, and lists keep
    /// only their strings, numbers and booleans (as text).
    pub fn from_json(v: &serde_json::Value) -> Option<AttrValue> {
        use serde_json::Value as J;
        match v {
            J::String(s) => Some(AttrValue::Str(s.clone())),
            J::Number(n) => n.as_f64().map(AttrValue::Num),
            J::Bool(b) => Some(AttrValue::Bool(*b)),
            J::Array(items) => Some(AttrValue::List(
                items
                    .iter()
                    .filter_map(|i| match i {
                        J::String(s) => Some(s.clone()),
                        J::Number(n) => Some(n.to_string()),
                        J::Bool(b) => Some(b.to_string()),
                        _ => None,
                    })
                    .collect(),
            )),
            J::Null | J::Object(_) => None,
        }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AttrValue::Str(s) => s.clone().into(),
            AttrValue::Num(n) => serde_json::Number::from_f64(*n)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            AttrValue::Bool(b) => (*b).into(),
            AttrValue::List(l) => l.clone().into(),
        }
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_string())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}
impl From<f64> for AttrValue {
    fn from(n: f64) -> Self {
        AttrValue::Num(n)
    }
}
impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        AttrValue::Bool(b)
    }
}

/// The attributes of one evaluation. The user key is the attribute `key`; the time zone
/// is the attribute `timezone`, parsed once when it is set, with how it was chosen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    attrs: Vec<(String, AttrValue)>,
    /// Beside each of `attrs`: its name's [`short_word`] and, for a string value, the
    /// value's (0 for a name or string of eight bytes or more, and for other values), so
    /// that evaluation finds a short attribute and tests a short value against a small
    /// set by comparing words.
    words: Vec<(u64, u64)>,
    zone: Option<Zone>,
    zone_source: Option<Source>,
    forced: Vec<(String, String)>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Context {
        Context::default()
    }

    /// A context with the user key set.
    pub fn with_key(key: &str) -> Context {
        let mut c = Context::new();
        c.set("key", key);
        c
    }

    /// Sets (or replaces) an attribute, builder style.
    pub fn with(mut self, name: &str, value: impl Into<AttrValue>) -> Context {
        self.set(name, value);
        self
    }

    /// Sets (or replaces) an attribute. Setting `timezone` also parses the zone (its
    /// source is then [`Source::Given`]); an unknown zone leaves the context without one.
    pub fn set(&mut self, name: &str, value: impl Into<AttrValue>) {
        let value = value.into();
        if name == "timezone" {
            self.zone = match &value {
                AttrValue::Str(s) => Zone::parse(s),
                _ => None,
            };
            self.zone_source = self.zone.map(|_| Source::Given);
        }
        let word = match &value {
            AttrValue::Str(s) => short_word(s),
            _ => 0,
        };
        match self.attrs.iter().position(|(n, _)| n == name) {
            Some(i) => {
                if let (Some(slot), Some(w)) = (self.attrs.get_mut(i), self.words.get_mut(i)) {
                    slot.1 = value;
                    w.1 = word;
                }
            }
            None => {
                self.attrs.push((name.to_string(), value));
                self.words.push((short_word(name), word));
            }
        }
    }

    /// Removes an attribute.
    pub fn remove(&mut self, name: &str) {
        if let Some(i) = self.attrs.iter().position(|(n, _)| n == name) {
            self.attrs.remove(i);
            self.words.remove(i);
        }
        if name == "timezone" {
            self.zone = None;
            self.zone_source = None;
        }
    }

    /// Sets the time zone directly (and the `timezone` attribute to its name), as given
    /// by the caller ([`Source::Given`]).
    pub fn set_zone(&mut self, zone: Zone) {
        self.set_zone_from(zone, Source::Given);
    }

    /// Sets the time zone and how it was chosen.
    pub fn set_zone_from(&mut self, zone: Zone, source: Source) {
        self.set("timezone", zone.name());
        self.zone = Some(zone);
        self.zone_source = Some(source);
    }

    /// Sets the zone a resolver chose ([`crate::place::resolve`]).
    pub fn set_resolved_zone(&mut self, resolution: &Resolution) {
        self.set_zone_from(resolution.zone, resolution.source);
    }

    /// An attribute's value.
    pub fn get(&self, name: &str) -> Option<&AttrValue> {
        self.attrs
            .iter()
            .find(|(n, _)| same(n, name))
            .map(|(_, v)| v)
    }

    /// [`Context::get`], by the name's [`short_word`] (`word`, which is 0 for a name of
    /// eight bytes or more) when the name is short.
    #[inline(always)]
    pub(crate) fn get_by(&self, word: u64, name: &str) -> Option<&AttrValue> {
        if word == 0 {
            return self.get(name);
        }
        let i = self.words.iter().position(|(w, _)| *w == word)?;
        self.attrs.get(i).map(|(_, v)| v)
    }

    /// The [`short_word`] of the value of the attribute whose name's word is `word` (not
    /// 0): `None` when there is no such attribute, 0 when its value is not a string of
    /// at most seven bytes.
    #[inline(always)]
    pub(crate) fn value_word(&self, word: u64) -> Option<u64> {
        self.words.iter().find(|(w, _)| *w == word).map(|(_, v)| *v)
    }

    /// Whether a preview forces any variant.
    #[inline(always)]
    pub(crate) fn forces(&self) -> bool {
        !self.forced.is_empty()
    }

    /// The user key, when it is a string.
    pub fn key(&self) -> Option<&str> {
        match self.get("key") {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The user's time zone, when known.
    pub fn zone(&self) -> Option<&Zone> {
        self.zone.as_ref()
    }

    /// How the user's time zone was chosen, when there is one.
    pub fn zone_source(&self) -> Option<Source> {
        self.zone.and(self.zone_source)
    }

    /// Forces `flag` to serve `variant` (a preview token's override); evaluation then
    /// reports [`crate::Reason::Preview`]. An unknown variant is ignored at evaluation.
    pub fn force(&mut self, flag: &str, variant: &str) {
        self.forced.retain(|(f, _)| f != flag);
        self.forced.push((flag.to_string(), variant.to_string()));
    }

    /// The variant forced for `flag`, if any.
    pub fn forced(&self, flag: &str) -> Option<&str> {
        self.forced
            .iter()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    }

    /// Every attribute, in the order set.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &AttrValue)> {
        self.attrs.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// Builds a context from a JSON object (`targetingKey` or `key` is the user key).
    pub fn from_json(obj: &serde_json::Map<String, serde_json::Value>) -> Context {
        let mut c = Context::new();
        for (k, v) in obj {
            let name = if k == "targetingKey" {
                "key"
            } else {
                k.as_str()
            };
            if let Some(a) = AttrValue::from_json(v) {
                c.set(name, a);
            }
        }
        c
    }
}

/// String equality without a call to `memcmp` and without a loop over bytes: the strings
/// compared while evaluating (attribute names, country codes, variant names) are short,
/// and in wasm a library call per comparison costs more than the bytes. Up to 16 bytes
/// are compared as at most two (possibly overlapping) words; longer strings eight bytes
/// at a time.
#[inline]
pub(crate) fn same(a: &str, b: &str) -> bool {
    same_bytes(a.as_bytes(), b.as_bytes())
}

/// [`same`] for bytes.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word8(a, i) != word8(b, i) {
                return false;
            }
            i += 8;
        }
        // The last eight bytes, overlapping the previous word when `n` is not a multiple.
        return word8(a, n - 8) == word8(b, n - 8);
    }
    if n >= 4 {
        return word4(a, 0) == word4(b, 0) && word4(a, n - 4) == word4(b, n - 4);
    }
    match n {
        0 => true,
        1 => a.first() == b.first(),
        _ => word2(a, 0) == word2(b, 0) && word2(a, n - 2) == word2(b, n - 2),
    }
}

/// A string of at most seven bytes as one word: its bytes (little-endian) and, in the top
/// byte, its length plus one, so that two such strings are equal exactly when their words
/// are. Longer strings have no word (0, which no short string's word equals). Read as two
/// overlapping loads, not byte by byte.
#[inline]
pub(crate) fn short_word(s: &str) -> u64 {
    let b = s.as_bytes();
    let n = b.len();
    let bytes = match n {
        0 => 0,
        1 => u64::from(b.first().copied().unwrap_or(0)),
        2 | 3 => u64::from(word2(b, 0)) | (u64::from(word2(b, n - 2)) << (8 * (n - 2))),
        4..=7 => u64::from(word4(b, 0)) | (u64::from(word4(b, n - 4)) << (8 * (n - 4))),
        _ => return 0,
    };
    bytes | ((n as u64 + 1) << 56)
}

/// The `N` bytes at `i` (zeros past the end, which callers never ask for).
#[inline(always)]
fn bytes_at<const N: usize>(s: &[u8], i: usize) -> [u8; N] {
    s.get(i..i + N)
        .and_then(|w| <[u8; N]>::try_from(w).ok())
        .unwrap_or([0; N])
}

/// The two bytes at `i` as a little-endian word.
#[inline(always)]
fn word2(s: &[u8], i: usize) -> u16 {
    u16::from_le_bytes(bytes_at(s, i))
}

/// The four bytes at `i` as a little-endian word.
#[inline(always)]
fn word4(s: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(bytes_at(s, i))
}

/// The eight bytes at `i` as a little-endian word.
#[inline(always)]
fn word8(s: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(bytes_at(s, i))
}

/// The byte order of two strings (as `str::cmp`), eight bytes at a time as big-endian
/// words while both have them, so that a lookup by flag key calls no `memcmp`.
#[inline]
pub(crate) fn order(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i + 8 <= x.len() && i + 8 <= y.len() {
        let (p, q) = (word8(x, i).swap_bytes(), word8(y, i).swap_bytes());
        if p != q {
            return p.cmp(&q);
        }
        i += 8;
    }
    let (x, y) = (
        x.get(i..).unwrap_or_default(),
        y.get(i..).unwrap_or_default(),
    );
    let mut j = 0;
    while j < x.len() && j < y.len() {
        let (p, q) = (x.get(j), y.get(j));
        if p != q {
            return p.cmp(&q);
        }
        j += 1;
    }
    x.len().cmp(&y.len())
}

#[cfg(test)]
mod tests {
    use super::{order, same, short_word};

    #[test]
    fn attributes_are_found_by_short_and_long_names_after_sets_and_removes() {
        use super::{AttrValue, Context};
        let names = [
            "key",
            "country",
            "k",
            "",
            "a-long-attribute-name",
            "東京",
            "countr",
            "countryx",
        ];
        let mut c = Context::new();
        for (i, n) in names.iter().enumerate() {
            c.set(n, i as f64);
        }
        let value = |c: &Context, n: &str| match c.get(n) {
            Some(AttrValue::Num(x)) => Some(*x as usize),
            _ => None,
        };
        for (i, n) in names.iter().enumerate() {
            assert_eq!(value(&c, n), Some(i), "{n:?}");
        }
        for absent in ["ke", "keys", "Country", "a-long-attribute-nam", "東"] {
            assert_eq!(c.get(absent), None, "{absent:?}");
        }
        c.remove("country");
        c.remove("k");
        c.set("key", 9.0);
        assert_eq!(value(&c, "country"), None);
        assert_eq!(value(&c, "k"), None);
        assert_eq!(value(&c, "key"), Some(9));
        assert_eq!(value(&c, "countr"), Some(6));
        assert_eq!(value(&c, "a-long-attribute-name"), Some(4));
        assert_eq!(value(&c, "countryx"), Some(7));
        c.set("country", 10.0);
        assert_eq!(value(&c, "country"), Some(10));
        // The words evaluation looks attributes up by agree with the names after every
        // set and remove, and a value's word follows its value.
        c.set("country", "JP");
        c.set("plan", "enterprise");
        c.remove("countr");
        for n in names.iter().chain(&["plan", "countr", "absent"]) {
            let by_word = c.get_by(short_word(n), n);
            assert_eq!(by_word, c.get(n), "{n:?}");
            if short_word(n) != 0 {
                let expected = match c.get(n) {
                    None => None,
                    Some(AttrValue::Str(s)) => Some(short_word(s)),
                    Some(_) => Some(0),
                };
                assert_eq!(c.value_word(short_word(n)), expected, "{n:?}");
            }
        }
        assert_eq!(c.value_word(short_word("country")), Some(short_word("JP")));
        assert_eq!(
            c.value_word(short_word("plan")),
            Some(0),
            "a long value has no word"
        );
    }

    #[test]
    fn short_words_are_equal_exactly_when_short_strings_are() {
        let words = [
            "", "a", "b", "\0", "a\0", "\0a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg",
            "bbcdefg", "abcdefh", "DE", "US", "東", "東京", "abcdefgh", "abcdefgi",
        ];
        for a in words {
            assert_eq!(short_word(a) == 0, a.len() > 7, "{a:?}");
            for b in words {
                if a.len() <= 7 && b.len() <= 7 {
                    assert_eq!(short_word(a) == short_word(b), a == b, "{a:?} {b:?}");
                }
            }
        }
        // The bytes sit where a byte-by-byte packing puts them.
        let bytewise = |s: &str| {
            s.bytes()
                .enumerate()
                .fold((s.len() as u64 + 1) << 56, |w, (i, x)| {
                    w | u64::from(x) << (8 * i)
                })
        };
        for a in words.iter().filter(|a| a.len() <= 7) {
            assert_eq!(short_word(a), bytewise(a), "{a:?}");
        }
    }

    #[test]
    fn same_and_order_agree_with_the_standard_comparisons() {
        let words = [
            "",
            "a",
            "b",
            "ab",
            "ba",
            "abc",
            "abd",
            "key",
            "now",
            "DE",
            "US",
            "de",
            "abcd",
            "abce",
            "bbcd",
            "abcde",
            "abcdf",
            "country",
            "countrx",
            "flag-000",
            "flag-001",
            "flag-0000",
            "flag-000a",
            "xlag-000",
            "a\0",
            "a\0\0",
            "東京",
            "東京都",
            "0123456789abcdef",
            "0123456789abcdeg",
            "1123456789abcdef",
            "0123456789abcdef0",
            "0123456789abcdef01234567",
            "0123456789abcdef01234568",
        ];
        for a in words {
            for b in words {
                assert_eq!(same(a, b), a == b, "{a:?} {b:?}");
                assert_eq!(order(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
        // Every length to 40, differing at every position.
        let base: String = (0..40).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        for n in 0..=40 {
            let a = &base[..n];
            assert!(same(a, a));
            for at in 0..n {
                let mut b = a.as_bytes().to_vec();
                b[at] = b'Z';
                let b = String::from_utf8(b).unwrap_or_default();
                assert!(!same(a, &b), "{a:?} {b:?}");
                assert_eq!(order(a, &b), a.cmp(&b), "{a:?} {b:?}");
            }
        }
    }
}
