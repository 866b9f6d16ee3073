//! `edgeflags preview-token`, `edgeflags console-link`, `edgeflags traits-cookie` and
//! `edgeflags identity-cookie`: the signed tokens a tester or an origin hands the edge (a
//! preview of geo, clock and variants; a login to the preview console; a user's fresh
//! traits; whose profile a request may read).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};

use crate::input::{now_secs, parse_at, parse_ttl, typed};
use crate::keys::secret_key;

#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// Country code (JP, FR, US, BR ...).
    #[arg(long)]
    country: Option<String>,
    /// Region code (the part of ISO 3166-2 after the dash: NY, 13, SP ...).
    #[arg(long)]
    region: Option<String>,
    /// City name.
    #[arg(long)]
    city: Option<String>,
    /// Continent code (AS, EU, NA, SA, OC, AF, AN).
    #[arg(long)]
    continent: Option<String>,
    /// Time zone: an IANA name (Asia/Tokyo) or ±HH:MM. Resolved at the edge from the
    /// place (country, region, city) when not given.
    #[arg(long, allow_hyphen_values = true)]
    zone: Option<String>,
    /// Device class: mobile, tablet, desktop, tv or bot.
    #[arg(long)]
    device: Option<String>,
    /// The instant the edge evaluates at, RFC 3339 (2026-11-28T21:00+09:00).
    #[arg(long)]
    at: Option<String>,
    /// Force a variant: FLAG=VARIANT (repeatable).
    #[arg(long = "variant", value_name = "FLAG=VARIANT")]
    variants: Vec<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: i64,
    /// A file holding the preview key.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TraitsCookieArgs {
    /// The user key the traits belong to (the edge ignores the cookie for anyone else).
    #[arg(long)]
    user: String,
    /// A trait: NAME=VALUE (repeatable; numbers and true/false are typed).
    #[arg(long = "trait", value_name = "NAME=VALUE")]
    traits: Vec<String>,
    /// Lifetime: 3600, 90m, 12h or 30d.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// A file holding the traits key.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

/// Runs `preview-token`.
pub fn preview_token(a: PreviewArgs) -> Result<ExitCode> {
    let mut claims = edgeflags_engine::preview::Claims {
        country: a.country.map(|c| c.to_ascii_uppercase()),
        region: a.region.map(|c| c.to_ascii_uppercase()),
        city: a.city,
        continent: a.continent.map(|c| c.to_ascii_uppercase()),
        zone: a.zone,
        device: a.device,
        ..Default::default()
    };
    if let Some(z) = &claims.zone
        && edgeflags_engine::Zone::parse(z).is_none()
    {
        bail!("unknown time zone `{z}`: use an IANA name such as Asia/Tokyo, or ±HH:MM");
    }
    if let Some(at) = &a.at {
        claims.at = Some(parse_at(at)?.to_rfc3339());
    }
    for v in &a.variants {
        let Some((flag, variant)) = v.split_once('=') else {
            bail!("--variant takes FLAG=VARIANT, got `{v}`");
        };
        claims
            .variants
            .insert(flag.to_string(), variant.to_string());
    }
    let now = now_secs();
    claims.exp = now + a.ttl.max(1);
    let key = secret_key(
        "preview_key",
        "EDGEFLAGS_PREVIEW_KEY",
        a.key_file.as_deref(),
    )?;
    println!("{}", edgeflags_engine::preview::mint(&claims, &key));
    Ok(ExitCode::SUCCESS)
}

/// Runs `traits-cookie`.
pub fn traits_cookie(a: TraitsCookieArgs) -> Result<ExitCode> {
    let mut traits = BTreeMap::new();
    for t in &a.traits {
        let Some((name, value)) = t.split_once('=') else {
            bail!("--trait takes NAME=VALUE, got `{t}`");
        };
        traits.insert(name.to_string(), typed(value));
    }
    let checked = edgeflags_engine::traits::check(&traits, None);
    if let Some((name, why)) = checked.refused.first() {
        bail!("trait `{name}`: {why}");
    }
    let ttl = parse_ttl(&a.ttl)?
        .context("a traits cookie needs a lifetime: --ttl 3600, 90m, 12h or 30d")?;
    let now = now_secs();
    let claims = edgeflags_engine::traits::CookieClaims {
        sub: a.user,
        exp: now + ttl,
        traits,
    };
    let key = secret_key("traits_key", "EDGEFLAGS_TRAITS_KEY", a.key_file.as_deref())?;
    println!("{}", edgeflags_engine::traits::mint_cookie(&claims, &key));
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct IdentityCookieArgs {
    /// The user key the origin vouches for.
    #[arg(long)]
    user: String,
    /// Lifetime: 3600, 90m, 12h or 30d.
    #[arg(long, default_value = "30d")]
    ttl: String,
    /// A file holding the traits key.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

/// Runs `identity-cookie`: prints a signed `ef_id` cookie value for a user.
pub fn identity_cookie(a: IdentityCookieArgs) -> Result<ExitCode> {
    if !edgeflags_engine::identity::valid_key(&a.user) {
        bail!(
            "`{}` is not a user key: 1 to 128 of letters, digits, - _ . : @",
            a.user
        );
    }
    let ttl = parse_ttl(&a.ttl)?
        .context("an identity cookie needs a lifetime: --ttl 3600, 90m, 12h or 30d")?;
    let claims = edgeflags_engine::identity::IdClaims {
        sub: a.user,
        exp: now_secs() + ttl,
    };
    let key = secret_key("traits_key", "EDGEFLAGS_TRAITS_KEY", a.key_file.as_deref())?;
    println!("{}", edgeflags_engine::identity::mint(&claims, &key));
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct ConsoleLinkArgs {
    /// Lifetime of the link and of the console session it opens: 3600, 90m, 12h or 7d
    /// at most.
    #[arg(long, default_value = "8h")]
    ttl: String,
    /// Who the link is for (the console shows it).
    #[arg(long, default_value = "console")]
    user: String,
    /// The site the edge serves, without a trailing slash.
    #[arg(long, default_value = "http://localhost:7676")]
    base: String,
    /// A file holding the preview key.
    #[arg(long)]
    key_file: Option<PathBuf>,
}

/// Runs `console-link`: prints a signed login link to the preview console.
pub fn console_link(a: ConsoleLinkArgs) -> Result<ExitCode> {
    use edgeflags_engine::console;
    let ttl = parse_ttl(&a.ttl)?
        .context("a console link needs a lifetime: --ttl 3600, 90m, 12h or 7d")?;
    if ttl > console::MAX_SESSION {
        bail!("--ttl `{}`: a console link lasts 7 days at most", a.ttl);
    }
    if !console::valid_subject(&a.user) {
        bail!("--user: 1 to 64 characters, no control characters");
    }
    let key = secret_key(
        "preview_key",
        "EDGEFLAGS_PREVIEW_KEY",
        a.key_file.as_deref(),
    )?;
    let login = console::Login {
        sub: a.user,
        exp: now_secs() + ttl,
    };
    println!(
        "{}{}",
        a.base.trim_end_matches('/'),
        console::login_path(&login, &key)
    );
    Ok(ExitCode::SUCCESS)
}
