//! End-to-end tests: the real edge wasm in Viceroy. One module per area.

mod events;
mod foundation;
mod ofrep;
mod personalization;
mod preview;
mod snapshots;
mod traits;
