//! Reading cookies from a request's `Cookie` headers, bounded: the first 16 headers, 64
//! cookies each, are searched, so thousands of cookies cost the edge nothing.

/// The most `Cookie` headers read.
pub const MAX_HEADERS: usize = 16;
/// The most cookies read from one header.
pub const MAX_PER_HEADER: usize = 64;

/// The value of the first cookie called `name` in `headers` (the `Cookie` header values,
/// in order), trimmed.
pub fn find<'a>(headers: impl IntoIterator<Item = &'a str>, name: &str) -> Option<&'a str> {
    headers
        .into_iter()
        .take(MAX_HEADERS)
        .flat_map(|h| h.split(';').take(MAX_PER_HEADER))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_within_the_bounds() {
        assert_eq!(find(["a=1; ef_uid= u1 ; b=2"], "ef_uid"), Some("u1"));
        assert_eq!(find(["a=1", "ef_uid=u2"], "ef_uid"), Some("u2"));
        assert_eq!(find(["ef_uidx=1; x=ef_uid"], "ef_uid"), None);
        let many: Vec<String> = (0..MAX_PER_HEADER).map(|i| format!("c{i}=v")).collect();
        let late = format!("{}; ef_uid=late", many.join("; "));
        assert_eq!(find([late.as_str()], "ef_uid"), None);
        let headers: Vec<&str> = std::iter::repeat_n("k=v", MAX_HEADERS)
            .chain(["ef_uid=late"])
            .collect();
        assert_eq!(find(headers, "ef_uid"), None);
    }
}
