//! systemd's notification protocol (sd_notify): READY=1 once serving, STATUS= lines, and
//! WATCHDOG=1 pings, sent as datagrams to $NOTIFY_SOCKET. Without that variable (not started
//! by systemd with Type=notify) every call does nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn send(message: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    if path.as_os_str().as_encoded_bytes().first() == Some(&b'@') {
        // Abstract sockets need an address type std does not offer portably; journald-only
        // setups use path sockets.
        tracing::debug!("abstract NOTIFY_SOCKET not supported; skipping sd_notify");
        return;
    }
    let sent = UnixDatagram::unbound().and_then(|socket| socket.send_to(message.as_bytes(), &path));
    if let Err(error) = sent {
        tracing::warn!(%error, "sd_notify failed");
    }
}

/// Tells systemd the service is ready.
pub fn ready() {
    send("READY=1");
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    send("STOPPING=1");
}

/// A one-line status for `systemctl status`.
pub fn status(text: &str) {
    send(&format!("STATUS={}", text.replace('\n', " ")));
}

/// How often to ping the watchdog: half of $WATCHDOG_USEC, when systemd set it for us.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    let pid_matches = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_none_or(|pid| pid == std::process::id());
    (pid_matches && usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Pings the watchdog.
pub fn watchdog() {
    send("WATCHDOG=1");
}
