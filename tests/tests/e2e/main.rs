//! calseg's end-to-end tests, compiled as one test binary. Each module drives real parts
//! through the harness in `calseg_tests`: real etcd, real systemd in sandboxes.

mod harness_etcd;
mod harness_sandbox;
