//! Fuzz target: see `edgeflags_engine::fuzzing::ofrep_body`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeflags_engine::fuzzing::ofrep_body(data));
