//! Nothing to see: this crate exists so that `cargo deny` has a known vulnerability to find.
pub use smallvec::SmallVec;
