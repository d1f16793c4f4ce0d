//! Fuzz target `agent_config`: the body is `calseg_agent::fuzz_targets::agent_config` (shared with tests/tests/fuzz_corpus.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| calseg_agent::fuzz_targets::agent_config(data));
