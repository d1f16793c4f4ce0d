//! This host's servers: the configured list, or the one saved at enrollment; starting at the
//! server that answered last, and recording every switch in the state directory so the next
//! pass starts there too and `status` can show it.

use super::Servers;
use crate::state::{StateDir, StateError};

/// The URLs this host calls: `configured` (the config file's `servers`), or when empty the
/// list saved at enrollment.
pub fn urls(configured: &[String], state: &StateDir) -> Result<Vec<String>, StateError> {
    if configured.is_empty() {
        state.servers()
    } else {
        Ok(configured.to_vec())
    }
}

/// The server in use: the one recorded last if it is still in `urls`, else the first.
pub fn current(urls: &[String], state: &StateDir) -> Result<Option<String>, StateError> {
    let recorded = state.current_server()?;
    Ok(recorded
        .filter(|url| urls.contains(url))
        .or_else(|| urls.first().cloned()))
}

/// The [`Servers`] this host calls, `None` when no URL is configured or saved.
pub fn servers(configured: &[String], state: &StateDir) -> Result<Option<Servers>, StateError> {
    let Some(servers) = Servers::new(urls(configured, state)?) else {
        return Ok(None);
    };
    let recorder = state.clone();
    Ok(Some(
        servers
            .starting_at(state.current_server()?.as_deref())
            .on_switch(Box::new(move |url| {
                if let Err(e) = recorder.save_current_server(url) {
                    tracing::warn!(error = %e, "cannot record the server in use");
                }
            })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_wins_over_saved_and_a_switch_is_recorded()
    -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let state = StateDir::new(tmp.path());
        assert!(servers(&[], &state)?.is_none());
        state.save_servers(&["https://a:1".into(), "https://b:2".into()])?;
        let configured = vec!["https://c:3".to_owned()];
        assert_eq!(urls(&configured, &state)?, configured);
        let saved_urls = urls(&[], &state)?;
        assert_eq!(
            current(&saved_urls, &state)?.as_deref(),
            Some("https://a:1")
        );

        let Some(saved) = servers(&[], &state)? else {
            panic!("the saved list");
        };
        assert_eq!(saved.current(), "https://a:1");
        saved.switch(0, 1, &[]);
        assert_eq!(state.current_server()?.as_deref(), Some("https://b:2"));
        assert_eq!(
            current(&saved_urls, &state)?.as_deref(),
            Some("https://b:2")
        );
        // The next client starts where the last one ended.
        assert_eq!(servers(&[], &state)?.map(|s| s.current_index()), Some(1));
        // A recorded server that is not in the configured list is ignored.
        assert_eq!(
            current(&configured, &state)?.as_deref(),
            Some("https://c:3")
        );
        Ok(())
    }
}
