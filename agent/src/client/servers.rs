//! The replicas of calseg-server an agent may call, and which one it calls now.
//!
//! Every URL in the list serves the same service: the same fleet CA (the CA pinned at
//! enrollment is trusted for all of them) and the same state, so any request may go to any of
//! them. The agent sticks to the server that last answered. A call that gets no answer
//! (connection refused, TLS handshake failure, timeout) or a 5xx is tried on the next server
//! in list order, wrapping around, each attempt bounded by the client's own timeouts; see
//! [`fails_over`]. The first server that answers becomes the current one, and the switch is
//! logged once (not on every later request that goes there).

use super::ClientError;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Called with the new server's URL after a switch (the daemon saves it for the next pass and
/// for `status`).
pub type OnSwitch = Box<dyn Fn(&str) + Send + Sync>;

/// A non-empty list of server URLs and the index of the one in use.
pub struct Servers {
    urls: Vec<String>,
    current: AtomicUsize,
    on_switch: Option<OnSwitch>,
}

impl fmt::Debug for Servers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Servers")
            .field("urls", &self.urls)
            .field("current", &self.current_index())
            .finish_non_exhaustive()
    }
}

/// Whether a failed call is worth trying on the next server: no answer at all, or a 5xx
/// (including 503), which is the replica's trouble, not the request's. A 4xx is the service's
/// real answer (403 not allowed, 404, 409 ...) and would be the same on every replica. 429
/// means the shared service is saturated (the fleet's restart budget, parked long-polls);
/// every replica shares that state, so the agent stays and honours `Retry-After` rather than
/// carry the herd to another replica.
pub fn fails_over(error: &ClientError) -> bool {
    match error {
        ClientError::Unreachable { .. } => true,
        ClientError::Api { status, .. } => *status >= 500,
        ClientError::Protocol { .. } | ClientError::Tls(_) => false,
    }
}

/// The order servers are tried in when the one at `start` is current: `start` first, then
/// the following ones in list order, wrapping around.
pub fn order(start: usize, len: usize) -> impl Iterator<Item = usize> {
    (0..len).map(move |i| (start + i) % len.max(1))
}

impl Servers {
    /// The list, starting at its first URL. `None` when `urls` is empty.
    pub fn new(urls: Vec<String>) -> Option<Self> {
        if urls.is_empty() {
            return None;
        }
        Some(Self {
            urls,
            current: AtomicUsize::new(0),
            on_switch: None,
        })
    }

    /// A list of one.
    pub fn one(url: &str) -> Self {
        Self {
            urls: vec![url.trim_end_matches('/').to_owned()],
            current: AtomicUsize::new(0),
            on_switch: None,
        }
    }

    /// Starts at `url` when it is in the list (the server that worked last time).
    pub fn starting_at(self, url: Option<&str>) -> Self {
        if let Some(index) = url.and_then(|url| self.urls.iter().position(|u| u == url)) {
            self.current.store(index, Ordering::Relaxed);
        }
        self
    }

    /// Calls `hook` with the new URL after each switch.
    pub fn on_switch(mut self, hook: OnSwitch) -> Self {
        self.on_switch = Some(hook);
        self
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn current_index(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// The URL of the server in use.
    pub fn current(&self) -> &str {
        self.url(self.current_index())
    }

    pub fn url(&self, index: usize) -> &str {
        self.urls
            .get(index)
            .or(self.urls.first())
            .map_or("", String::as_str)
    }

    /// The servers to try for one call, the current one first.
    pub fn attempts(&self) -> impl Iterator<Item = (usize, &str)> {
        order(self.current_index(), self.urls.len()).map(|i| (i, self.url(i)))
    }

    /// Records that the server at `to` answered after the call that started at `from` failed
    /// on the servers in `failed`. Logs and calls the hook only if this call made the switch
    /// (a concurrent call may have made it already).
    pub fn switch(&self, from: usize, to: usize, failed: &[ClientError]) {
        if from == to
            || self
                .current
                .compare_exchange(from, to, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let why = failed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        tracing::warn!(
            failed = self.url(from),
            now = self.url(to),
            error = why,
            "server failed; failing over to the next server"
        );
        if let Some(hook) = &self.on_switch {
            hook(self.url(to));
        }
    }

    /// The error to return when every server failed: the one with the longest `Retry-After`
    /// if any sent one; one `Unreachable` naming every server if none answered; else the last.
    pub fn exhausted(&self, mut failed: Vec<ClientError>) -> ClientError {
        let longest = failed
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.retry_after().map(|after| (after, i)))
            .max();
        if let Some((_, index)) = longest {
            return failed.swap_remove(index);
        }
        let all_unreachable = failed
            .iter()
            .all(|e| matches!(e, ClientError::Unreachable { .. }));
        if failed.len() > 1 && all_unreachable {
            let message = failed
                .iter()
                .filter_map(|e| match e {
                    ClientError::Unreachable { url, message } => Some(format!("{url}: {message}")),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("; ");
            return ClientError::Unreachable {
                url: format!("any of {} servers", failed.len()),
                message,
            };
        }
        failed.pop().unwrap_or_else(|| ClientError::Unreachable {
            url: self.current().to_owned(),
            message: "no server to call".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn api(status: u16, retry_after: Option<u64>) -> ClientError {
        ClientError::Api {
            url: "https://a".into(),
            status,
            kind: "k".into(),
            message: "m".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn unreachable(url: &str) -> ClientError {
        ClientError::Unreachable {
            url: url.into(),
            message: "connection refused".into(),
        }
    }

    fn three() -> Servers {
        let urls = ["https://a:1", "https://b:2", "https://c:3"];
        Servers::new(urls.map(String::from).to_vec()).unwrap()
    }

    #[test]
    fn no_answer_and_5xx_fail_over_4xx_and_429_do_not() {
        assert!(fails_over(&unreachable("https://a")));
        for status in [500, 502, 503, 504] {
            assert!(fails_over(&api(status, None)), "{status}");
        }
        for status in [400, 401, 403, 404, 409, 429] {
            assert!(!fails_over(&api(status, Some(5))), "{status}");
        }
        let protocol = ClientError::Protocol {
            url: "https://a".into(),
            message: "not JSON".into(),
        };
        assert!(!fails_over(&protocol));
        assert!(!fails_over(&ClientError::Tls("bad key".into())));
    }

    #[test]
    fn attempts_start_at_the_current_server_and_wrap_around() {
        assert_eq!(order(0, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(order(1, 3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(order(2, 3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(order(0, 1).collect::<Vec<_>>(), [0]);
        let servers = three().starting_at(Some("https://c:3"));
        let urls: Vec<&str> = servers.attempts().map(|(_, url)| url).collect();
        assert_eq!(urls, ["https://c:3", "https://a:1", "https://b:2"]);
        // A saved URL no longer in the list: start at the first.
        assert_eq!(
            three().starting_at(Some("https://gone:4")).current_index(),
            0
        );
        assert!(Servers::new(Vec::new()).is_none());
    }

    #[test]
    fn a_switch_sticks_and_is_reported_once() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let hook_seen = seen.clone();
        let servers = three().on_switch(Box::new(move |url| {
            hook_seen.lock().unwrap().push(url.to_owned());
        }));
        servers.switch(0, 1, &[unreachable("https://a:1")]);
        assert_eq!(servers.current(), "https://b:2");
        // A second call that also started at 0 (concurrently) does not switch again.
        servers.switch(0, 2, &[unreachable("https://a:1")]);
        assert_eq!(servers.current(), "https://b:2");
        // No switch without a change of server.
        servers.switch(1, 1, &[]);
        assert_eq!(*seen.lock().unwrap(), ["https://b:2"]);
    }

    #[test]
    fn when_all_fail_the_longest_retry_after_wins_else_all_are_named() {
        let servers = three();
        let err = servers.exhausted(vec![
            api(503, Some(5)),
            unreachable("https://b:2"),
            api(503, Some(30)),
        ]);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
        let err = servers.exhausted(vec![unreachable("https://a:1"), unreachable("https://b:2")]);
        let text = err.to_string();
        assert!(
            text.contains("any of 2 servers") && text.contains("https://a:1: connection refused"),
            "{text}"
        );
        assert!(err.is_transient());
        let err = servers.exhausted(vec![unreachable("https://a:1"), api(502, None)]);
        assert!(matches!(err, ClientError::Api { status: 502, .. }));
    }
}
