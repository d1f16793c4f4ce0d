//! The fuzz targets' bodies: one module per binary whose hostile input they feed.

/// The agent's: its config file and the CNI conflist it patches.
pub mod agent;
/// The server's: policy, CSR, API JSON bodies and its config file.
pub mod server;
