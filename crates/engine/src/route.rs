//! The routes table: which backend, path prefix and host serve a request, chosen by
//! where the user is, what they are, and which variants they were served.

use chrono::{DateTime, Utc};

use crate::context::Context;
use crate::model::{Route, Snapshot};

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
