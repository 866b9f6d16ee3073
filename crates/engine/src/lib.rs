//! The edgeflags flag engine.
//!
//! Pure Rust, no I/O, no clock, no randomness: a flag file (JSON) is compiled once into a
//! validated [`Snapshot`]; [`Snapshot::evaluate`] then decides one flag, and
//! [`Snapshot::evaluate_all`] every flag, for a [`Context`] at an instant `now` that the
//! caller supplies. Evaluation is total: it never panics and never returns `Err`; an error
//! is a [`Reason::Error`] with an [`ErrorCode`].
//!
//! Bucketing (percentage rollouts and experiments) is SipHash-2-4 with a fixed, published
//! key: see [`bucket`] and `docs/bucketing.md`.
#![deny(missing_docs)]
// One exception, allowed where it is: `Name::as_str` (see name.rs).
#![deny(unsafe_code)]

pub mod allocation;
pub mod attributes;
pub mod bucket;
pub mod codec;
pub mod compile;
pub mod console;
pub mod context;
pub mod cookie;
pub mod digest;
pub mod edit;
pub mod eval;
pub mod events;
pub mod explain;
pub mod forward;
pub mod freshness;
#[doc(hidden)]
pub mod fuzzing;
pub mod header_value;
pub mod history;
pub mod identity;
pub mod inject;
pub mod lint;
pub mod model;
pub mod name;
pub mod ofrep;
pub mod pack;
pub mod page;
pub mod payload;
pub mod place;
pub mod preview;
pub mod route;
pub mod sequential;
pub mod target;
pub mod traits;
pub mod zone;

pub use bucket::{BUCKETS, bucket_of};
pub use compile::{CompileError, ValidationError, compile, compile_packed, compile_str};
pub use context::{AttrValue, Context};
pub use eval::{ErrorCode, Evaluation, Reason};
pub use model::{ContextSettings, FlagType, OfrepSettings, Route, Snapshot};
pub use zone::Zone;

/// The largest compact JSON text one flag may have: one Fastly config-store value.
pub const MAX_FLAG_CHARS: usize = 8000;
