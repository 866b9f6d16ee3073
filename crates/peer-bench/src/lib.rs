//! Equivalent flag sets for the three engines; see benches/peers.rs.
