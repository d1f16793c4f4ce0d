//! Fuzz target `policy`: the body is `calseg_testkit::fuzz::server::policy` (shared with tests/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calseg_testkit::fuzz::server::policy(data));
