//! Fuzz target `api_json`: the body is `calseg_testkit::fuzz::server::api_json` (shared with tests/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calseg_testkit::fuzz::server::api_json(data));
