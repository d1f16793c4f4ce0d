//! Phase 4: Felix's and confd's syncers (libcalico-go `lib/backend/syncersv1/felixsyncer`,
//! `bgpsyncer`, through `watchersyncer`) list each prefix and then watch it from the listed
//! revision. etcd grants a prefix Range or Watch only when the whole interval lies inside the
//! identity's permissions, and refuses a watch by cancelling it, which the replay waits for.

use super::Report;
use crate::replay::datastore::Datastore;
use crate::replay::error::ReplayError;
use crate::replay::keys;
use crate::replay::settings::Settings;

/// Phase 4: list, then watch, every prefix of [`keys::watched_prefixes`].
pub async fn list_and_watch(ds: &mut Datastore, s: &Settings) -> Result<Report, ReplayError> {
    let prefixes = keys::watched_prefixes(&s.node);
    let mut objects = 0;
    for prefix in &prefixes {
        let (values, revision) = ds.list(prefix).await?;
        objects += values.len();
        ds.watch(prefix, revision + 1).await?;
    }
    Ok(Report::new(
        4,
        "list and watch",
        format!(
            "{} prefixes listed ({objects} objects) and watched",
            prefixes.len()
        ),
    ))
}
