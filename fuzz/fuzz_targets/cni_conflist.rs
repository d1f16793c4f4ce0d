//! Fuzz target `cni_conflist`: the body is `calseg_agent::fuzz_targets::cni_conflist_patch` (shared with tests/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calseg_agent::fuzz_targets::cni_conflist_patch(data));
