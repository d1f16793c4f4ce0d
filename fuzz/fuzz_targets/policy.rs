//! Fuzz target `policy`: the body is `calseg_server::fuzz_targets::policy` (shared with tests/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calseg_server::fuzz_targets::policy(data));
