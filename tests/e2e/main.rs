//! End-to-end tests: the real edge wasm in Viceroy. One module per area.

mod bad_input;
mod browser;
mod console;
mod events;
mod faults;
mod foundation;
mod guard;
mod host_calls;
mod hostile;
mod isolation;
mod ofrep;
mod page;
mod personalization;
mod preview;
mod security;
mod snapshots;
mod traits;
mod zones;
