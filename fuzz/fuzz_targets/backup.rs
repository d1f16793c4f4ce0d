//! Fuzz target `backup`: the body is `calseg_testkit::fuzz::server::backup` (shared with tests/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calseg_testkit::fuzz::server::backup(data));
