//! Fuzz target: see `edgeflags_engine::fuzzing::page`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| edgeflags_engine::fuzzing::page(data));
