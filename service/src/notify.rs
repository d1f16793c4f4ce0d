//! systemd's notification protocol (sd_notify(3)): one datagram of `KEY=VALUE` lines to
//! `$NOTIFY_SOCKET`. The lines and the monotonic clock come from the `sd-notify` crate; the
//! sending is ours because that crate connects to filesystem paths only, and systemd may hand
//! out an abstract socket (`@name`). Without `$NOTIFY_SOCKET` (not started by systemd with
//! `Type=notify`) every call does nothing; a failed send is logged at debug level only, as
//! notification is best effort.

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub use sd_notify::NotifyState;

/// Sends `states` to systemd, if systemd is listening.
pub fn notify(states: &[NotifyState<'_>]) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send_to(&socket, &message(states)) {
        tracing::debug!(%error, "sd_notify failed");
    }
}

/// The datagram for `states`: one `KEY=VALUE` line each.
pub fn message(states: &[NotifyState<'_>]) -> String {
    states.iter().map(|state| format!("{state}\n")).collect()
}

/// Sends `message` to the notification socket `socket`: a path, or an abstract socket's name
/// after `@`.
pub fn send_to(socket: &OsStr, message: &str) -> io::Result<()> {
    let bytes = socket.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(socket)?,
    };
    let sent = UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr)?;
    if sent != message.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "sd_notify: incomplete datagram",
        ));
    }
    Ok(())
}

/// Startup (or a reload) is finished.
pub fn ready() {
    notify(&[NotifyState::Ready]);
}

/// Startup is finished, with a first status line.
pub fn ready_with_status(text: &str) {
    let text = one_line(text);
    notify(&[NotifyState::Ready, NotifyState::Status(&text)]);
}

/// A reload starts: `RELOADING=1` with `MONOTONIC_USEC=` (CLOCK_MONOTONIC now), which systemd
/// 253 and later require with it. Answer with [`ready`] when the reload is over.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(error) => {
            tracing::debug!(%error, "CLOCK_MONOTONIC unreadable; RELOADING=1 without MONOTONIC_USEC");
            notify(&[NotifyState::Reloading]);
        }
    }
}

/// The service is stopping.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// A one-line status for `systemctl status`.
pub fn status(text: &str) {
    let text = one_line(text);
    notify(&[NotifyState::Status(&text)]);
}

/// Pings the watchdog.
pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}

/// How often to ping the watchdog: half of `$WATCHDOG_USEC`, when systemd set it for this
/// process.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|every| !every.is_zero())
        .map(|every| every / 2)
}

/// `text` with line breaks turned into spaces: one datagram line per state.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), &message(&[NotifyState::Ready])).unwrap();
        assert_eq!(receive(&listener), "READY=1\n");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("calseg-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        let socket = format!("@{name}");
        send_to(OsStr::new(&socket), &message(&[NotifyState::Watchdog])).unwrap();
        assert_eq!(receive(&listener), "WATCHDOG=1\n");
    }

    #[test]
    fn a_reload_message_carries_the_monotonic_clock() {
        let now = NotifyState::monotonic_usec_now().unwrap();
        let text = message(&[NotifyState::Reloading, now]);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"));
        let usec: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(usec > 0);
    }

    #[test]
    fn a_status_stays_on_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }
}
