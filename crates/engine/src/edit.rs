//! Edge changes: what a variant does to the page itself (the `edge` object of a flag), as
//! data. A change names a CSS selector and an action (set text, set or remove an
//! attribute, replace, prepend or append HTML, remove the element, or fill it with a
//! fragment fetched from an origin path); a variant may also redirect. Values are
//! [`Template`]s: `{city}`, `{country}` or `{traits.watch_genre}` take the request's
//! attribute, always HTML-escaped. A leaf: it imports nothing of the engine.

use std::borrow::Cow;

/// What one variant of one flag does at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantEdits {
    /// The flag's index in the snapshot.
    pub flag: usize,
    /// The variant's index in the flag.
    pub variant: usize,
    /// The changes to the HTML page, in order.
    pub changes: Vec<Change>,
    /// A redirect decided before any origin fetch.
    pub redirect: Option<Redirect>,
}

/// Every variant's edge changes, and how the edge applies them (the file's `edge`
/// object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    /// Variants that carry changes or a redirect, by (flag, variant) in order.
    pub variants: Vec<VariantEdits>,
    /// Whether the page gets the bootstrap element with the user's decisions.
    pub bootstrap: bool,
    /// Hosts a redirect may send a visitor to besides the request's own.
    pub redirect_hosts: Vec<String>,
}

impl Edits {
    /// What variant `variant` of flag `flag` does at the edge, if anything.
    pub fn of(&self, flag: usize, variant: usize) -> Option<&VariantEdits> {
        self.variants
            .binary_search_by(|v| (v.flag, v.variant).cmp(&(flag, variant)))
            .ok()
            .and_then(|i| self.variants.get(i))
    }

    /// Whether any variant of flag `flag` carries an edge change or a redirect.
    pub fn touches(&self, flag: usize) -> bool {
        self.variants.iter().any(|v| v.flag == flag)
    }

    /// Whether there is nothing at all for the edge to do to a page.
    pub fn is_empty(&self) -> bool {
        self.variants.is_empty() && !self.bootstrap
    }
}

/// One change to the elements a CSS selector matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The CSS selector (checked by compile with the rewriter's own parser).
    pub selector: String,
    /// What to do.
    pub action: Action,
}

/// What a change does to each element its selector matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Replaces the element's content with this text (escaped).
    Text(Template),
    /// Sets an attribute (the value escaped).
    SetAttribute(String, Template),
    /// Removes an attribute.
    RemoveAttribute(String),
    /// Replaces the element with this HTML.
    Replace(Template),
    /// Puts this HTML at the start of the element's content.
    Prepend(Template),
    /// Puts this HTML at the end of the element's content.
    Append(Template),
    /// Removes the element and its content.
    Remove,
    /// Replaces the element's content with the HTML of the fragment at this origin path.
    Fragment(String),
}

impl Action {
    /// The action's name in the flag file.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Text(_) => "text",
            Action::SetAttribute(..) => "set_attribute",
            Action::RemoveAttribute(_) => "remove_attribute",
            Action::Replace(_) => "replace",
            Action::Prepend(_) => "prepend",
            Action::Append(_) => "append",
            Action::Remove => "remove",
            Action::Fragment(_) => "fragment",
        }
    }

    /// The action's tag in the packed snapshot (stored data: never renumber).
    pub fn tag(&self) -> u64 {
        match self {
            Action::Text(_) => 0,
            Action::SetAttribute(..) => 1,
            Action::RemoveAttribute(_) => 2,
            Action::Replace(_) => 3,
            Action::Prepend(_) => 4,
            Action::Append(_) => 5,
            Action::Remove => 6,
            Action::Fragment(_) => 7,
        }
    }

    /// What the action sets on an element, for conflict checks: two changes that set
    /// the same thing of the same selector cannot both win (`content` for text, replace
    /// and fragment; `attr:NAME` for an attribute; `element` for removal).
    pub fn target(&self) -> Option<Cow<'static, str>> {
        match self {
            Action::Text(_) | Action::Replace(_) | Action::Fragment(_) | Action::Remove => {
                Some(Cow::Borrowed("content"))
            }
            Action::SetAttribute(name, _) | Action::RemoveAttribute(name) => {
                Some(Cow::Owned(format!("attribute `{name}`")))
            }
            Action::Prepend(_) | Action::Append(_) => None,
        }
    }
}

/// A redirect test's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The request path it applies to (`/checkout`).
    pub from: String,
    /// A path (`/new-checkout`) or an absolute `https://` URL.
    pub to: String,
    /// 302 or 307.
    pub status: u16,
}

/// A value with `{attribute}` placeholders; `{{` and `}}` stand for braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub String);

/// A piece of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'t> {
    /// Literal text.
    Literal(&'t str),
    /// An attribute's value goes here.
    Attribute(&'t str),
}

/// Why a template cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{` without its `}`.
    #[error("`{{` at byte {0} is not closed (write `{{{{` for a brace)")]
    Unclosed(usize),
    /// `}` without a `{`.
    #[error("`}}` at byte {0} closes nothing (write `}}}}` for a brace)")]
    Stray(usize),
    /// `{}` or a name with characters other than letters, digits, `_`, `-` and `.`.
    #[error("`{{{0}}}` is not an attribute name")]
    BadName(String),
}

impl Template {
    /// The template's pieces, or why it cannot be read.
    pub fn pieces(&self) -> Result<Vec<Piece<'_>>, TemplateError> {
        let s = self.0.as_str();
        let mut out = Vec::new();
        let mut literal_from = 0;
        let mut i = 0;
        let bytes = s.as_bytes();
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    out.push(Piece::Literal(&s[literal_from..=i]));
                    i += 2;
                    literal_from = i;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    out.push(Piece::Literal(&s[literal_from..=i]));
                    i += 2;
                    literal_from = i;
                }
                b'{' => {
                    let close = s[i..].find('}').ok_or(TemplateError::Unclosed(i))?;
                    let name = &s[i + 1..i + close];
                    let good = !name.is_empty()
                        && name.len() <= 128
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
                    if !good {
                        return Err(TemplateError::BadName(name.to_string()));
                    }
                    out.push(Piece::Literal(&s[literal_from..i]));
                    out.push(Piece::Attribute(name));
                    i += close + 1;
                    literal_from = i;
                }
                b'}' => return Err(TemplateError::Stray(i)),
                _ => i += 1,
            }
        }
        out.push(Piece::Literal(&s[literal_from..]));
        out.retain(|p| *p != Piece::Literal(""));
        Ok(out)
    }

    /// The template with each placeholder replaced by `value(name)` (empty when
    /// absent), HTML-escaped; literal text is kept as written (HTML for an HTML
    /// change, text for a text one, which the rewriter escapes as a whole).
    pub fn render(&self, value: impl Fn(&str) -> Option<String>, literal_is_html: bool) -> String {
        let Ok(pieces) = self.pieces() else {
            return String::new();
        };
        let mut out = String::with_capacity(self.0.len());
        for p in pieces {
            match p {
                Piece::Literal(l) => out.push_str(l),
                Piece::Attribute(name) => {
                    let v = value(name).unwrap_or_default();
                    if literal_is_html {
                        out.push_str(&escape_html(&v));
                    } else {
                        out.push_str(&v);
                    }
                }
            }
        }
        out
    }
}

/// `s` with `&`, `<`, `>`, `"` and `'` written as character references: safe in HTML
/// text and in a quoted attribute value.
pub fn escape_html(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b"&<>\"'".contains(&b)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template(s.to_string())
    }

    #[test]
    fn templates_take_attributes_and_escape_them_in_html() {
        let value = |n: &str| match n {
            "city" => Some("<Tokyo & \"Co\">".to_string()),
            "traits.watch_genre" => Some("anime".to_string()),
            _ => None,
        };
        assert_eq!(
            t("<b>Hello {city}</b>").render(value, true),
            "<b>Hello &lt;Tokyo &amp; &quot;Co&quot;&gt;</b>"
        );
        // A text change's value is escaped by the rewriter as a whole.
        assert_eq!(t("Hi {city}").render(value, false), "Hi <Tokyo & \"Co\">");
        assert_eq!(
            t("{traits.watch_genre}/{missing}!").render(value, true),
            "anime/!"
        );
        assert_eq!(t("{{literal}} {{").render(value, true), "{literal} {");
    }

    #[test]
    fn bad_templates_are_refused_with_the_place() {
        assert_eq!(t("a {city").pieces(), Err(TemplateError::Unclosed(2)));
        assert_eq!(t("a } b").pieces(), Err(TemplateError::Stray(2)));
        assert_eq!(
            t("{a b}").pieces(),
            Err(TemplateError::BadName("a b".into()))
        );
        assert_eq!(t("{}").pieces(), Err(TemplateError::BadName(String::new())));
        assert_eq!(
            t("x{country}y").pieces(),
            Ok(vec![
                Piece::Literal("x"),
                Piece::Attribute("country"),
                Piece::Literal("y")
            ])
        );
    }

    #[test]
    fn escaping_leaves_plain_text_alone() {
        assert!(matches!(escape_html("Tokyo"), Cow::Borrowed("Tokyo")));
        assert_eq!(escape_html("a'b"), "a&#39;b");
    }

    #[test]
    fn variants_are_found_by_flag_and_variant() {
        let e = Edits {
            variants: vec![
                VariantEdits {
                    flag: 0,
                    variant: 1,
                    changes: vec![],
                    redirect: None,
                },
                VariantEdits {
                    flag: 2,
                    variant: 0,
                    changes: vec![],
                    redirect: Some(Redirect {
                        from: "/a".into(),
                        to: "/b".into(),
                        status: 302,
                    }),
                },
            ],
            ..Edits::default()
        };
        assert!(e.of(0, 1).is_some());
        assert!(e.of(0, 0).is_none());
        assert!(e.of(2, 0).and_then(|v| v.redirect.as_ref()).is_some());
        assert!(e.touches(2) && !e.touches(1));
    }
}
