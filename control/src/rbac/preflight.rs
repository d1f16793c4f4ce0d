//! Checks before calseg reads or changes etcd's auth store: auth must be enabled (otherwise every
//! certificate etcd trusts has full access and roles mean nothing) and calseg's own identity
//! must hold the root role (only root may change users and roles).

use super::retry::with_retry;
use etcd_client::Client;
use thiserror::Error;

/// Why calseg will not work on this etcd.
#[derive(Debug, Error)]
pub enum PreflightError {
    #[error(
        "etcd auth is not enabled at {endpoints}: every client certificate etcd trusts has full \
         access, so calseg's roles would restrict nothing. Enable it (create user root with role \
         root, then `etcdctl auth enable`), or pass --allow-auth-disabled to proceed anyway"
    )]
    AuthDisabled { endpoints: String },
    #[error(
        "calseg's etcd identity may not manage users and roles at {endpoints} ({source}): the \
         certificate configured for the server must name a user that holds etcd's root role"
    )]
    NotRoot {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("cannot reach etcd at {endpoints}")]
    Unreachable {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
}

/// Whether etcd enforces auth, as found by [`preflight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Enabled,
    /// Disabled, and the caller allowed that.
    DisabledAllowed,
}

/// Checks auth is enabled (unless `allow_auth_disabled`) and that calseg holds the root role.
pub async fn preflight(
    client: &Client,
    endpoints: &str,
    allow_auth_disabled: bool,
) -> Result<AuthMode, PreflightError> {
    let endpoints = endpoints.to_owned();
    // etcd 3.4 has no AuthStatus call; Authenticate answers "authentication is not enabled"
    // when auth is off, and refuses the made-up credentials otherwise.
    let probe = with_retry(|| {
        let mut auth = client.auth_client();
        async move {
            auth.authenticate("calseg-preflight-probe".into(), "x".into())
                .await
                .map(drop)
        }
    })
    .await;
    let enabled = match probe {
        Err(error) if error.to_string().contains("authentication is not enabled") => false,
        Err(error) if super::retry::is_transient(&error) => {
            return Err(PreflightError::Unreachable {
                endpoints,
                source: error,
            });
        }
        _ => true,
    };
    if !enabled && !allow_auth_disabled {
        return Err(PreflightError::AuthDisabled { endpoints });
    }
    // Listing users needs the root role when auth is on.
    let listed = with_retry(|| {
        let mut c = client.clone();
        async move { c.user_list().await.map(drop) }
    })
    .await;
    match listed {
        Ok(()) => Ok(if enabled {
            AuthMode::Enabled
        } else {
            AuthMode::DisabledAllowed
        }),
        Err(error) if super::retry::is_transient(&error) => Err(PreflightError::Unreachable {
            endpoints,
            source: error,
        }),
        Err(source) => Err(PreflightError::NotRoot { endpoints, source }),
    }
}
