//! The Fastly API through its official client (`fastly-api`): the client's configuration
//! (address, the token in `FASTLY_API_TOKEN`, our user agent), the one retry every call
//! goes through, and errors that say what to do next. A rate-limited call (429) is tried
//! again after 1, 2, 4 and 8 s (the generated client does not expose `Retry-After` on
//! errors); any other failure is an error at once.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;
use fastly_api::apis::configuration::{ApiKey, Configuration};
use fastly_api::apis::{Error as ApiError, ResponseContent};

/// The Fastly API's address.
pub const DEFAULT_API: &str = "https://api.fastly.com";
/// How many times a rate-limited call is tried.
const TRIES: u32 = 5;

/// The kind of store a command reaches: what the token must be allowed to write, and
/// where its id is found, for the errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A config store (the flag snapshot).
    Config,
    /// A KV store (user profiles).
    Kv,
}

impl StoreKind {
    fn plural(self) -> &'static str {
        match self {
            StoreKind::Config => "config stores",
            StoreKind::Kv => "KV stores",
        }
    }

    fn id_hint(self) -> &'static str {
        match self {
            StoreKind::Config => "check the config store id (fastly config-store list)",
            StoreKind::Kv => "check the KV store id (fastly kv-store list)",
        }
    }
}

/// The API for one kind of store: cheap to clone into concurrent tasks. (No `Debug`: the
/// configuration holds the token.)
#[derive(Clone)]
pub struct Api {
    cfg: Configuration,
    kind: StoreKind,
}

/// The API client for `kind` with the token in `FASTLY_API_TOKEN`, and a runtime to drive
/// it.
pub fn connect(api_url: &str, kind: StoreKind) -> Result<(Api, tokio::runtime::Runtime)> {
    let token = std::env::var("FASTLY_API_TOKEN").map_err(|_| {
        anyhow::anyhow!(
            "set FASTLY_API_TOKEN to a Fastly API token that may write {}",
            kind.plural()
        )
    })?;
    let cfg = Configuration {
        base_path: api_url.trim_end_matches('/').to_string(),
        api_key: Some(ApiKey {
            prefix: None,
            key: token,
        }),
        user_agent: Some(format!("edgeflags/{}", env!("CARGO_PKG_VERSION"))),
        ..Configuration::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok((Api { cfg, kind }, rt))
}

impl Api {
    /// Makes one API call, `what` naming it for errors: `call` gets the client's
    /// configuration and starts the request; a rate-limited call is started again after
    /// the back-off, up to `TRIES` times.
    pub async fn call<T, E, F, Fut>(&self, what: &str, mut call: F) -> Result<T>
    where
        F: FnMut(Configuration) -> Fut,
        Fut: Future<Output = Result<T, ApiError<E>>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            match call(self.cfg.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) => match backoff(&e, tries) {
                    Some(wait) => {
                        eprintln!(
                            "edgeflags: rate limited by the Fastly API, retrying in {} s",
                            wait.as_secs()
                        );
                        tokio::time::sleep(wait).await;
                    }
                    None => return Err(failure(e, self.kind, what)),
                },
            }
        }
    }
}

/// A call's answer with "not found" (404) as `None`, for reads and deletes of one item.
pub fn found<T, E>(answer: Result<T, ApiError<E>>) -> Result<Option<T>, ApiError<E>> {
    match answer {
        Ok(v) => Ok(Some(v)),
        Err(ApiError::ResponseError(r)) if r.status.as_u16() == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// The wait before trying again a call that failed with `e` on try `tries` (1, 2, 4,
/// 8 s), or `None` when it is not tried again.
fn backoff<E>(e: &ApiError<E>, tries: u32) -> Option<Duration> {
    match e {
        ApiError::ResponseError(r) if r.status.as_u16() == 429 && tries < TRIES => {
            Some(Duration::from_secs(1 << (tries - 1).min(3)))
        }
        _ => None,
    }
}

/// The error for a failed call: the API's answer and what to do next.
fn failure<E>(e: ApiError<E>, kind: StoreKind, what: &str) -> anyhow::Error {
    match e {
        ApiError::ResponseError(ResponseContent {
            status, content, ..
        }) => {
            let code = status.as_u16();
            let hint = match code {
                401 | 403 => format!(
                    "check that FASTLY_API_TOKEN is valid and may write {}",
                    kind.plural()
                ),
                404 => kind.id_hint().to_string(),
                429 => "the API kept rate-limiting; wait a minute and run the command again".into(),
                _ => {
                    "run the command again; if it keeps failing, check https://www.fastlystatus.com"
                        .into()
                }
            };
            anyhow::anyhow!(
                "{what} failed: the API answered {code}: {}\n{hint}",
                content.chars().take(300).collect::<String>()
            )
        }
        other => anyhow::anyhow!("{what} failed (could not reach the API): {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: u16, content: &str) -> ApiError<()> {
        ApiError::ResponseError(ResponseContent {
            status: code.try_into().unwrap_or_else(|e| panic!("{e}")),
            content: content.to_string(),
            entity: None,
        })
    }

    fn unreachable() -> ApiError<()> {
        ApiError::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ))
    }

    fn api(kind: StoreKind) -> Api {
        Api {
            cfg: Configuration::default(),
            kind,
        }
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
            .block_on(f)
    }

    #[test]
    fn only_a_rate_limit_is_tried_again_four_times_with_doubling_waits() {
        let waits: Vec<Option<u64>> = (1..=5)
            .map(|t| backoff(&answered(429, ""), t).map(|d| d.as_secs()))
            .collect();
        assert_eq!(waits, [Some(1), Some(2), Some(4), Some(8), None]);
        for code in [400, 401, 403, 404, 500, 503] {
            assert_eq!(backoff(&answered(code, ""), 1), None, "{code}");
        }
        assert_eq!(backoff(&unreachable(), 1), None);
    }

    #[test]
    fn errors_name_the_call_the_answer_and_what_to_do_for_the_store() {
        let msg = |e, kind, what| failure(e, kind, what).to_string();
        assert_eq!(
            msg(
                answered(401, "{\"msg\":\"no\"}"),
                StoreKind::Config,
                "reading the config store"
            ),
            "reading the config store failed: the API answered 401: {\"msg\":\"no\"}\n\
             check that FASTLY_API_TOKEN is valid and may write config stores"
        );
        assert!(msg(answered(403, ""), StoreKind::Kv, "x").ends_with("may write KV stores"));
        assert!(
            msg(answered(404, ""), StoreKind::Config, "x")
                .ends_with("check the config store id (fastly config-store list)")
        );
        assert!(
            msg(answered(404, ""), StoreKind::Kv, "x")
                .ends_with("check the KV store id (fastly kv-store list)")
        );
        assert!(
            msg(answered(429, ""), StoreKind::Kv, "x")
                .ends_with("wait a minute and run the command again")
        );
        assert!(
            msg(answered(502, ""), StoreKind::Kv, "x")
                .ends_with("check https://www.fastlystatus.com")
        );
        // The API's answer is cut at 300 characters.
        let long = msg(answered(500, &"a".repeat(400)), StoreKind::Config, "x");
        assert!(
            long.contains(&format!("500: {}\n", "a".repeat(300))),
            "{long}"
        );
        assert_eq!(
            msg(unreachable(), StoreKind::Kv, "writing a profile"),
            "writing a profile failed (could not reach the API): error in IO: connection refused"
        );
    }

    #[test]
    fn a_call_that_fails_otherwise_is_made_once() {
        let mut calls = 0;
        let out: Result<()> = run(api(StoreKind::Kv).call("deleting a profile", |_| {
            calls += 1;
            async { Err(answered(500, "boom")) }
        }));
        assert_eq!(calls, 1);
        let err = out.map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| {
            e.starts_with("deleting a profile failed: the API answered 500: boom")
        }));
        let mut calls = 0;
        let ok = run(
            api(StoreKind::Config).call("reading the config store", |cfg| {
                calls += 1;
                let base = cfg.base_path;
                async move { Ok::<_, ApiError<()>>(base) }
            }),
        );
        assert_eq!(
            (calls, ok.ok().as_deref()),
            (1, Some("https://api.fastly.com"))
        );
    }

    #[test]
    fn found_reads_a_404_as_none() {
        assert!(matches!(found(Ok::<_, ApiError<()>>(7)), Ok(Some(7))));
        assert!(matches!(found::<u8, ()>(Err(answered(404, ""))), Ok(None)));
        assert!(matches!(
            found::<u8, ()>(Err(answered(403, ""))),
            Err(ApiError::ResponseError(_))
        ));
    }
}
