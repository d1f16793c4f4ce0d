//! sd_notify(3) without libsystemd: one datagram to `$NOTIFY_SOCKET` (a path, or an abstract
//! socket when it starts with `@`). Does nothing when not run by systemd.

use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (e.g. `READY=1`) to systemd, ignoring failures: notification is best effort.
pub fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Some(path) = path.to_str() else {
        return;
    };
    let addr = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())
    } else {
        SocketAddr::from_pathname(path)
    };
    let sent = addr.and_then(|addr| {
        UnixDatagram::unbound().and_then(|sock| sock.send_to_addr(state.as_bytes(), &addr))
    });
    if let Err(e) = sent {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}
