//! Enrollment tokens: their format, generation, hashing and the pure checks of a redemption.
//!
//! A token is `<id>.<secret>`: `id` is 8 hex digits (public: it names the token in listings and
//! the audit log), `secret` is 32 random bytes as 64 hex digits. The store keeps only SHA-256 of
//! the whole token string, so the secret is shown once at creation and never again. Every check
//! here is pure so that each [`Store`](super::Store) backend runs the same rules inside its own
//! transaction.

use std::fmt;

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::StoreError;
use super::records::{NodeRecord, NodeState, unix_ts};

const ID_BYTES: usize = 4;
const SECRET_BYTES: usize = 32;

/// Which nodes a token lets in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Exactly this node, once.
    Node(String),
    /// Up to `uses_max` distinct nodes whose name matches the glob, each once. Nodes the server
    /// already knows are refused (see [`StoreError::NodeKnown`]).
    Match { glob: String, uses_max: u32 },
}

impl TokenScope {
    /// How many redemptions the token allows in total.
    pub fn uses_max(&self) -> u32 {
        match self {
            Self::Node(_) => 1,
            Self::Match { uses_max, .. } => *uses_max,
        }
    }

    /// Refuses a scope that could never be redeemed or that has a broken glob.
    pub fn validate(&self) -> Result<(), StoreError> {
        let reason = match self {
            Self::Node(name) if name.is_empty() => "the node name is empty".to_owned(),
            Self::Node(_) => return Ok(()),
            Self::Match { uses_max: 0, .. } => "--uses must be at least 1".to_owned(),
            Self::Match { glob, .. } => match glob::Pattern::new(glob) {
                Ok(_) => return Ok(()),
                Err(e) => format!("glob {glob:?}: {e}"),
            },
        };
        Err(StoreError::InvalidScope { reason })
    }

    fn allows(&self, node: &str) -> bool {
        match self {
            Self::Node(name) => name == node,
            Self::Match { glob, .. } => glob::Pattern::new(glob).is_ok_and(|p| p.matches(node)),
        }
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Node(name) => write!(f, "node {name:?}"),
            Self::Match { glob, uses_max } => {
                write!(f, "nodes matching {glob:?} (up to {uses_max})")
            }
        }
    }
}

/// A freshly created token. `token` is the only copy of the secret: show it once.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    pub id: String,
    /// `<id>.<secret>`, to hand to the agent.
    pub token: String,
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for NewToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewToken")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A token as listings show it: never the hash, never the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub scope: TokenScope,
    /// The nodes that redeemed it, in order.
    pub uses: Vec<String>,
    #[serde(with = "super::records::unix_ts")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "super::records::unix_ts")]
    pub created_at: OffsetDateTime,
    pub created_by: String,
}

/// The result of a successful redemption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenUse {
    pub token_id: String,
    /// The node, now approved.
    pub node: NodeRecord,
    /// Its state before, if it was known (re-enrollment): worth an audit line.
    pub previous_state: Option<NodeState>,
}

/// A token as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub id: String,
    /// Hex SHA-256 of the whole token string.
    pub hash: String,
    pub scope: TokenScope,
    #[serde(default)]
    pub uses: Vec<String>,
    #[serde(with = "unix_ts")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "unix_ts")]
    pub created_at: OffsetDateTime,
    #[serde(default)]
    pub created_by: String,
}

impl TokenRecord {
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id.clone(),
            scope: self.scope.clone(),
            uses: self.uses.clone(),
            expires_at: self.expires_at,
            created_at: self.created_at,
            created_by: self.created_by.clone(),
        }
    }

    /// Every check of a redemption, in the order that gives the most useful error.
    pub fn check_redeem(
        &self,
        token: &str,
        node: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let id = self.id.clone();
        if !hash_matches(&self.hash, token) {
            return Err(StoreError::BadSecret { id });
        }
        if now >= self.expires_at {
            return Err(StoreError::Expired {
                id,
                expired_at: self.expires_at,
            });
        }
        if !self.scope.allows(node) {
            let (node, scope) = (node.to_owned(), self.scope.to_string());
            return Err(StoreError::NodeNotAllowed { node, scope });
        }
        if matches!(self.scope, TokenScope::Match { .. }) && self.uses.iter().any(|u| u == node) {
            return Err(StoreError::AlreadyUsedByNode {
                id,
                node: node.to_owned(),
            });
        }
        let uses_max = self.scope.uses_max();
        if self.uses.len() >= uses_max as usize {
            return Err(StoreError::Exhausted {
                id,
                uses: self.uses.len(),
                uses_max,
            });
        }
        Ok(())
    }
}

/// A new random `(id, token)`.
pub(crate) fn generate(rng: &SystemRandom) -> Result<(String, String), StoreError> {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill(&mut id).map_err(|_| StoreError::Random)?;
    rng.fill(&mut secret).map_err(|_| StoreError::Random)?;
    let id = hex::encode(id);
    let token = format!("{id}.{}", hex::encode(secret));
    Ok((id, token))
}

/// The id of a well-formed token, or [`StoreError::MalformedToken`].
pub(crate) fn parse_id(token: &str) -> Result<&str, StoreError> {
    let is_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match token.split_once('.') {
        Some((id, secret)) if is_hex(id, 2 * ID_BYTES) && is_hex(secret, 2 * SECRET_BYTES) => {
            Ok(id)
        }
        _ => Err(StoreError::MalformedToken),
    }
}

/// Hex SHA-256 of the whole token string.
pub(crate) fn hash(token: &str) -> String {
    hex::encode(digest(&SHA256, token.as_bytes()))
}

/// Compares in time independent of where the hashes differ.
fn hash_matches(stored_hex: &str, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    stored_hex.as_bytes().ct_eq(hash(token).as_bytes()).into()
}

/// Checks a new token's scope and lifetime; returns when it expires.
pub(in crate::store) fn expiry(
    scope: &TokenScope,
    ttl: Duration,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, StoreError> {
    scope.validate()?;
    if !ttl.is_positive() {
        let reason = format!("{ttl} is not positive; give a lifetime such as 1h");
        return Err(StoreError::InvalidTtl { reason });
    }
    now.checked_add(ttl).ok_or_else(|| StoreError::InvalidTtl {
        reason: format!("{ttl} is too long"),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_hash_to_their_own_hash_only() {
        let rng = SystemRandom::new();
        let (id, token) = generate(&rng).unwrap();
        let (_, other) = generate(&rng).unwrap();
        assert_eq!((id.len(), token.len()), (8, 8 + 1 + 64));
        assert_eq!(parse_id(&token).unwrap(), id);
        assert!(hash_matches(&hash(&token), &token));
        assert!(!hash_matches(&hash(&token), &other));
        assert!(
            !hash_matches("", &token),
            "a truncated stored hash never matches"
        );
    }

    #[test]
    fn hash_is_hex_sha256_of_the_whole_token() {
        let h = hash("abc");
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn parse_refuses_uppercase_and_odd_shapes() {
        let ok = format!("0123abcd.{}", "f".repeat(64));
        assert!(parse_id(&ok).is_ok());
        for bad in [
            ok.to_uppercase(),
            format!("{ok}."),
            format!("{ok}0"),
            ok.replace('.', ""),
        ] {
            assert!(parse_id(&bad).is_err(), "{bad}");
        }
    }
}
