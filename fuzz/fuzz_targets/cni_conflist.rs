//! Fuzz target `cni_conflist`: the body is `calseg_testkit::fuzz::agent::cni_conflist_patch` (shared with tests/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calseg_testkit::fuzz::agent::cni_conflist_patch(data));
