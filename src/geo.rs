//! Geolocation through the raw hostcall: the fastly crate's `Geo::utc_offset` drops every
//! negative (western) offset, so the JSON is read here and the offset parsed directly.
//! Values are kept as Fastly sends them (`utc_offset` 0 for absent and 9999 for invalid,
//! coordinates 999.9 for absent): the engine's zone resolver knows those conventions.

use std::net::IpAddr;

use edgeflags_engine::place::Place;

/// Looks up an address; `None` when the platform knows nothing of it.
pub fn lookup(ip: IpAddr) -> Option<Place> {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut buf = vec![0u8; 4096];
    let mut written = 0usize;
    crate::platform::count(crate::platform::Call::Geo, 1);
    // SAFETY: the pointers and lengths describe live buffers owned by this function, and
    // the host writes at most `buf.len()` bytes and reports how many in `written`.
    let status = unsafe {
        fastly_sys::fastly_geo::lookup(
            octets.as_ptr(),
            octets.len(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut written,
        )
    };
    if !status.is_ok() || written == 0 || written > buf.len() {
        return None;
    }
    buf.truncate(written);
    let v: serde_json::Value = serde_json::from_slice(&buf).ok()?;
    let text = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty() && s.len() <= 64 && *s != "?")
            .map(str::to_string)
    };
    Some(Place {
        country: text("country_code").map(|c| c.to_ascii_uppercase()),
        region: text("region").map(|c| c.to_ascii_uppercase()),
        city: text("city"),
        continent: text("continent").map(|c| c.to_ascii_uppercase()),
        latitude: v.get("latitude").and_then(|x| x.as_f64()),
        longitude: v.get("longitude").and_then(|x| x.as_f64()),
        utc_offset: v
            .get("utc_offset")
            .and_then(|o| o.as_i64())
            .and_then(|o| i32::try_from(o).ok()),
    })
}
