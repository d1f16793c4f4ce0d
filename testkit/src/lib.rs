//! calseg-testkit: what calseg's tests share and its shipped binaries never contain.
//!
//! A crate of its own (`publish = false`), so that a release build of `calseg-server` or
//! `calseg-agent` compiles none of it; the test crates and `fuzz/` depend on it instead.
//!
//! # Layout
//! - [`store_conformance`]: the behaviour every store backend must show, as checks over
//!   `&dyn Store`; run on the redb store by this crate's tests and on the etcd store by the
//!   end-to-end tests.
//! - [`fuzz`]: the bodies of the fuzz targets in `fuzz/`, which the corpus regression test
//!   (`tests/tests/fuzz_corpus.rs`) also runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod fuzz;
pub mod store_conformance;
