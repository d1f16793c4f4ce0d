//! Fuzz target `server_config`: the body is `calseg_server::fuzz_targets::server_config` (shared with tests/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calseg_server::fuzz_targets::server_config(data));
