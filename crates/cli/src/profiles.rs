//! `edgeflags profiles push|get|delete`: user profiles (behaviour traits) in the
//! `edgeflags_profiles` KV store, keyed by the keyed hash of the user key. The raw key
//! never leaves the machine: it is hashed (HMAC-SHA256 with the `user_hash_key` secret)
//! before upload. `push` checks the whole file first and uploads nothing when any line is
//! wrong; it writes the live store through the `fastly-api` client, or a local Viceroy KV
//! file with `--local`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use edgeflags_engine::traits::{self, Profile};
use fastly_api::apis::kv_store_item_api::{
    KvStoreDeleteItemParams, KvStoreGetItemParams, KvStoreUpsertItemParams, kv_store_delete_item,
    kv_store_get_item, kv_store_upsert_item,
};
use serde_json::{Map, Value};

use crate::api::{self, Api, StoreKind};
use crate::input::{now_secs, parse_ttl, read};
use crate::keys::secret_key;

/// How many uploads are in flight at once.
const CONCURRENCY: usize = 8;

#[derive(Debug, clap::Subcommand)]
pub enum ProfilesCommand {
    /// Upload profiles from an NDJSON or CSV file, hashing each user key on the way out.
    ///
    /// NDJSON: one `{"user": "u42", "traits": {"watch_genre": "anime", "buyer": true}}` per
    /// line. CSV: a header `user,TRAIT,...` and one user per row (values are strings; an
    /// empty cell leaves the trait out). Every line is checked first: any problem stops
    /// the upload, with every problem listed.
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags profiles push traits.ndjson --store-id 7kxyz --ttl 30d
    Push(PushArgs),
    /// Print one user's stored profile.
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags profiles get u42 --store-id 7kxyz
    Get(UserArgs),
    /// Delete one user's profile (erasure).
    ///
    /// Example: FASTLY_API_TOKEN=... edgeflags profiles delete u42 --store-id 7kxyz
    Delete(UserArgs),
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The KV store id (or set EDGEFLAGS_PROFILE_STORE_ID); `fastly kv-store list` shows it.
    #[arg(
        long,
        env = "EDGEFLAGS_PROFILE_STORE_ID",
        required_unless_present = "local"
    )]
    store_id: Option<String>,
    /// Use a local Viceroy KV file (JSON) instead of the live store.
    #[arg(long)]
    local: Option<PathBuf>,
    /// The Fastly API address (for tests and proxies).
    #[arg(long, default_value = api::DEFAULT_API)]
    api_url: String,
    /// The file holding the user-hash key (else $EDGEFLAGS_USER_HASH_KEY, else the local
    /// dev key in config-store/secrets.json).
    #[arg(long)]
    key_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The NDJSON (.ndjson, .jsonl) or CSV (.csv) file.
    file: PathBuf,
    #[command(flatten)]
    target: Target,
    /// How long profiles stay valid: 3600, 90m, 12h, 30d, or `never`.
    #[arg(long, default_value = "30d")]
    ttl: String,
}

#[derive(Debug, clap::Args)]
pub struct UserArgs {
    /// The user key.
    user: String,
    #[command(flatten)]
    target: Target,
}

/// Runs a `profiles` subcommand.
pub fn run(cmd: ProfilesCommand) -> Result<ExitCode> {
    match cmd {
        ProfilesCommand::Push(a) => push(a),
        ProfilesCommand::Get(a) => get(a),
        ProfilesCommand::Delete(a) => delete(a),
    }
}

/// Reads and checks a profiles file: `(user, traits)` per line, or every problem.
pub fn read_profiles(path: &Path) -> Result<Vec<(String, BTreeMap<String, Value>)>> {
    let text = read(path)?;
    let csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let rows = if csv {
        csv_rows(&text)?
    } else {
        ndjson_rows(&text)
    };
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let mut seen = BTreeMap::new();
    for (line, row) in rows {
        let (user, traits) = match row {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        if !valid_user(&user) {
            problems.push(format!(
                "line {line}: user `{}` is not 1 to 128 of letters, digits, - _ . : @",
                user.chars().take(40).collect::<String>()
            ));
        }
        if let Some(first) = seen.insert(user.clone(), line) {
            problems.push(format!(
                "line {line}: user `{user}` again (first on line {first})"
            ));
        }
        let checked = traits::check(&traits, None);
        for (name, why) in &checked.refused {
            problems.push(format!("line {line}: trait `{name}`: {why}"));
        }
        out.push((user, traits));
    }
    if !problems.is_empty() {
        bail!(
            "{}: {} problem(s), nothing uploaded:\n  {}",
            path.display(),
            problems.len(),
            problems.join("\n  ")
        );
    }
    Ok(out)
}

type Row = std::result::Result<(String, BTreeMap<String, Value>), String>;

fn ndjson_rows(text: &str) -> Vec<(usize, Row)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let row = serde_json::from_str::<Value>(l)
                .map_err(|e| format!("not JSON: {e}"))
                .and_then(|v| {
                    let Value::Object(mut o) = v else {
                        return Err("not a JSON object".to_string());
                    };
                    let user = match o.remove("user") {
                        Some(Value::String(u)) => u,
                        _ => return Err("`user` (a string) is missing".into()),
                    };
                    let traits = match o.remove("traits") {
                        Some(Value::Object(t)) => t.into_iter().collect(),
                        _ => return Err("`traits` (an object) is missing".into()),
                    };
                    if let Some(k) = o.keys().next() {
                        return Err(format!(
                            "unknown field `{k}` (a line has `user` and `traits`)"
                        ));
                    }
                    Ok((user, traits))
                });
            (i + 1, row)
        })
        .collect()
}

fn csv_rows(text: &str) -> Result<Vec<(usize, Row)>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .context("the CSV has no header row")?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.first().map(String::as_str) != Some("user") {
        bail!("the CSV's first column must be `user`, then one column per trait");
    }
    let mut rows = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let line = i + 2;
        let row = rec.map_err(|e| format!("bad CSV: {e}")).map(|r| {
            let user = r.get(0).unwrap_or("").trim().to_string();
            let traits = headers
                .iter()
                .zip(r.iter())
                .skip(1)
                .filter(|(_, v)| !v.is_empty())
                .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
                .collect();
            (user, traits)
        });
        rows.push((line, row));
    }
    Ok(rows)
}

fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 128
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
}

fn profile_json(traits: &BTreeMap<String, Value>, expires: Option<i64>) -> String {
    serde_json::to_string(&Profile {
        traits: traits.clone(),
        expires,
    })
    .unwrap_or_default()
}

fn push(a: PushArgs) -> Result<ExitCode> {
    let ttl = parse_ttl(&a.ttl)?;
    let profiles = read_profiles(&a.file)?;
    let key = user_hash_key(&a.target)?;
    let expires = ttl.map(|t| now_secs() + t);
    let items: Vec<(String, String)> = profiles
        .iter()
        .map(|(u, t)| (traits::user_hash(&key, u), profile_json(t, expires)))
        .collect();
    if let Some(path) = &a.target.local {
        let mut file = read_local(path)?;
        for (k, v) in &items {
            let mut entry = Map::new();
            entry.insert("data".into(), Value::String(v.clone()));
            file.insert(k.clone(), Value::Object(entry));
        }
        write_local(path, &file)?;
        println!(
            "{}: {} profiles written ({} in the file)",
            path.display(),
            items.len(),
            file.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let kv = Kv::connect(&a.target)?;
    let total = items.len();
    let ttl_secs = ttl.map(|t| i32::try_from(t).unwrap_or(i32::MAX));
    kv.upsert_all(items, ttl_secs, |done| {
        if done == total || done % 100 == 0 {
            eprintln!("edgeflags: pushed {done}/{total} profiles");
        }
    })?;
    println!("pushed {total} profiles to KV store {}", kv.store_id);
    Ok(ExitCode::SUCCESS)
}

/// The user's key in the store: the keyed hash with the user-hash key.
fn hashed(t: &Target, user: &str) -> Result<String> {
    let key = user_hash_key(t)?;
    Ok(traits::user_hash(&key, user))
}

fn user_hash_key(t: &Target) -> Result<Vec<u8>> {
    secret_key(
        "user_hash_key",
        "EDGEFLAGS_USER_HASH_KEY",
        t.key_file.as_deref(),
    )
}

fn get(a: UserArgs) -> Result<ExitCode> {
    let hashed = hashed(&a.target, &a.user)?;
    let stored = match &a.target.local {
        Some(path) => read_local(path)?
            .get(&hashed)
            .and_then(|e| e.get("data"))
            .and_then(Value::as_str)
            .map(str::to_string),
        None => Kv::connect(&a.target)?.get(&hashed)?,
    };
    match stored {
        Some(text) => {
            let profile = traits::parse_profile(text.as_bytes(), i64::MIN)
                .map_err(|e| anyhow::anyhow!("the stored profile is unusable: {e}"))?;
            let mut out = Map::new();
            out.insert("user".into(), a.user.clone().into());
            out.insert("kv_key".into(), hashed.into());
            let traits: Map<String, Value> = profile
                .values
                .iter()
                .map(|(n, v)| (n.clone(), v.to_json()))
                .collect();
            out.insert("traits".into(), Value::Object(traits));
            out.insert("expires".into(), profile.expires.into());
            out.insert(
                "expired".into(),
                profile.expires.is_some_and(|e| e <= now_secs()).into(),
            );
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no profile for user `{}` (key {hashed})", a.user);
            Ok(ExitCode::from(1))
        }
    }
}

fn delete(a: UserArgs) -> Result<ExitCode> {
    let hashed = hashed(&a.target, &a.user)?;
    let existed = match &a.target.local {
        Some(path) => {
            let mut file = read_local(path)?;
            let existed = file.remove(&hashed).is_some();
            write_local(path, &file)?;
            existed
        }
        None => Kv::connect(&a.target)?.delete(&hashed)?,
    };
    if existed {
        println!("deleted the profile of user `{}` (key {hashed})", a.user);
    } else {
        println!(
            "no profile for user `{}` (key {hashed}): nothing to delete",
            a.user
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn read_local(path: &Path) -> Result<Map<String, Value>> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t).with_context(|| {
            format!(
                "{} is not a Viceroy KV file (a JSON object of {{\"data\": ...}})",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn write_local(path: &Path, file: &Map<String, Value>) -> Result<()> {
    let text = serde_json::to_string_pretty(file)? + "\n";
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The live KV store, through the API.
struct Kv {
    api: Api,
    store_id: String,
    rt: tokio::runtime::Runtime,
}

impl Kv {
    fn connect(t: &Target) -> Result<Kv> {
        let Some(store_id) = t.store_id.clone() else {
            bail!("pass --store-id (or set EDGEFLAGS_PROFILE_STORE_ID), or --local FILE");
        };
        let (api, rt) = api::connect(&t.api_url, StoreKind::Kv)?;
        Ok(Kv { api, store_id, rt })
    }

    /// Upserts every item, `CONCURRENCY` at a time, retrying rate limits; `progress` is
    /// called with the count done after each.
    fn upsert_all(
        &self,
        items: Vec<(String, String)>,
        ttl: Option<i32>,
        mut progress: impl FnMut(usize),
    ) -> Result<()> {
        let store_id = self.store_id.clone();
        let api = self.api.clone();
        self.rt.block_on(async move {
            let mut queue = items.into_iter();
            let mut running = tokio::task::JoinSet::new();
            let mut done = 0;
            loop {
                while running.len() < CONCURRENCY {
                    let Some((key, value)) = queue.next() else {
                        break;
                    };
                    let api = api.clone();
                    let store_id = store_id.clone();
                    running.spawn(async move {
                        api.call("writing a profile", |mut cfg| {
                            let params = KvStoreUpsertItemParams {
                                store_id: store_id.clone(),
                                key: key.clone(),
                                time_to_live_sec: ttl,
                                body: Some(value.clone()),
                                ..KvStoreUpsertItemParams::default()
                            };
                            async move { kv_store_upsert_item(&mut cfg, params).await }
                        })
                        .await
                    });
                }
                let Some(joined) = running.join_next().await else {
                    break;
                };
                joined.context("an upload task failed")??;
                done += 1;
                progress(done);
            }
            Ok(())
        })
    }

    /// The stored value of `key`, or `None`.
    fn get(&self, key: &str) -> Result<Option<String>> {
        self.rt
            .block_on(self.api.call("reading a profile", |mut cfg| {
                let params = KvStoreGetItemParams {
                    store_id: self.store_id.clone(),
                    key: key.to_string(),
                };
                // The generated client reads the value as a JSON string, the form its
                // upsert writes: the value is the profile's own JSON.
                async move { api::found(kv_store_get_item(&mut cfg, params).await) }
            }))
    }

    /// Deletes `key`; whether it existed.
    fn delete(&self, key: &str) -> Result<bool> {
        let deleted = self
            .rt
            .block_on(self.api.call("deleting a profile", |mut cfg| {
                let params = KvStoreDeleteItemParams {
                    store_id: self.store_id.clone(),
                    key: key.to_string(),
                    ..KvStoreDeleteItemParams::default()
                };
                async move { api::found(kv_store_delete_item(&mut cfg, params).await) }
            }))?;
        Ok(deleted.is_some())
    }
}
