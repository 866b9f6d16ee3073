//! The routes table: which backend, path prefix and host serve a request, chosen by
//! where the user is, what they are, and which variants they were served.

use chrono::{DateTime, Utc};

use crate::context::Context;
use crate::model::Snapshot;

/// Whether a request path is safe to put behind a route's path prefix (kept here for
/// callers of `route::safe_path`; the rule lives with the request target).
pub use crate::target::safe_path;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    /// The id of the route rule that chose it (`default` for the default route).
    pub id: String,
    /// The backend name (a Fastly backend).
    pub backend: String,
    /// A prefix put before the request path, such as `/ja`.
    pub path_prefix: Option<String>,
    /// A Host header to send instead of the client's.
    pub host: Option<String>,
}

/// One route rule: its clauses and required variants must all match.
#[derive(Debug)]
pub(crate) struct RouteRule {
    pub(crate) clauses: crate::model::Span,
    /// (flag index, acceptable variant indexes).
    pub(crate) flags: Vec<(usize, Vec<usize>)>,
    pub(crate) route: Route,
}

impl Snapshot {
    /// The route for `ctx` at `now`: the first route rule that matches, else the default.
    pub fn route(&self, ctx: &Context, now: DateTime<Utc>) -> &Route {
        self.routes
            .iter()
            .find(|r| {
                r.clauses
                    .of(&self.arena.clauses)
                    .iter()
                    .all(|c| self.clause_matches(c, ctx, now))
                    && r.flags.iter().all(|(flag, variants)| {
                        self.variant_index(*flag, ctx, now)
                            .is_some_and(|v| variants.contains(&v))
                    })
            })
            .map(|r| &r.route)
            .unwrap_or(&self.default_route)
    }

    /// The route tried when the chosen backend fails (refused, timed out, 5xx).
    pub fn fallback_route(&self) -> Option<&Route> {
        self.fallback_route.as_ref()
    }

    /// Every backend a route names, the default first.
    pub fn backends(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.default_route.backend.as_str())
            .chain(self.routes.iter().map(|r| r.route.backend.as_str()))
    }
}
