//! Administrator certificates: CN `admin:NAME`, signed by the fleet CA, short-lived.
//!
//! An administrator certificate approves nodes, creates tokens and revokes. calseg keeps no
//! list of them to check, so their lifetime is what bounds a stolen one: `init` and
//! `calseg-server admin issue` make them for [`DEFAULT_LIFETIME`], and the server refuses any
//! whose validity is longer than [`MAX_LIFETIME`] (a one-year certificate from an older
//! release included). Only whoever can read the fleet CA key, i.e. root on the server host, can
//! mint a new one.

use super::{CertificateAuthority, CsrRules, IssuedCert, KeyAlgorithm, PkiError, new_csr};
use std::time::Duration;
use time::OffsetDateTime;

/// The CN prefix of administrator certificates. Node names cannot contain ':', so no node's
/// certificate can ever be an administrator's.
pub const ADMIN_PREFIX: &str = "admin:";

/// What `init` and `admin issue` give when not told otherwise.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(7 * 86_400);

/// The longest validity the server accepts from an administrator certificate.
pub const MAX_LIFETIME: Duration = Duration::from_secs(31 * 86_400);

/// Validity the server tolerates beyond [`MAX_LIFETIME`]: signing backdates `not_before` by five
/// minutes for clock skew.
const BACKDATE_SLACK: Duration = Duration::from_secs(15 * 60);

/// A new administrator key (PEM, made here) and its certificate.
pub struct AdminCredentials {
    pub key_pem: String,
    pub cert: IssuedCert,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("cert", &self.cert.common_name)
            .finish_non_exhaustive()
    }
}

/// Makes a key and a certificate `admin:NAME` valid for `lifetime` from `now`.
pub fn issue(
    fleet: &CertificateAuthority,
    name: &str,
    lifetime: Duration,
    now: OffsetDateTime,
) -> Result<AdminCredentials, PkiError> {
    check_name(name)?;
    if lifetime > MAX_LIFETIME {
        return Err(PkiError::InvalidRequest(format!(
            "an administrator certificate may live at most {} days (asked for {} days): the \
             server refuses longer ones",
            MAX_LIFETIME.as_secs() / 86_400,
            lifetime.as_secs().div_ceil(86_400)
        )));
    }
    let cn = format!("{ADMIN_PREFIX}{name}");
    let key = new_csr(&cn, KeyAlgorithm::EcdsaP256)?;
    let cert = fleet
        .sign_agent_csr(&key.csr_pem, &CsrRules::default(), &cn, lifetime, now)
        .map_err(|e| PkiError::InvalidRequest(format!("sign {cn}: {e}")))?;
    Ok(AdminCredentials {
        key_pem: key.key_pem,
        cert,
    })
}

/// `None` when a certificate valid from `not_before` to `not_after` may act as an
/// administrator; otherwise why not, for the caller.
pub fn refusal(not_before: i64, not_after: i64) -> Option<String> {
    let lived = not_after.saturating_sub(not_before);
    let allowed = (MAX_LIFETIME + BACKDATE_SLACK).as_secs();
    (u64::try_from(lived).unwrap_or(u64::MAX) > allowed).then(|| {
        format!(
            "this administrator certificate is valid for {} days; the server accepts at most {} \
             days. Issue a short-lived one on the server host: `calseg-server admin issue`",
            lived / 86_400,
            MAX_LIFETIME.as_secs() / 86_400
        )
    })
}

/// Administrator names: 1 to 48 of `a-z`, `0-9`, `-`, `_`, `.`, starting with a letter or digit.
fn check_name(name: &str) -> Result<(), PkiError> {
    let ok = (1..=48).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidRequest(format!(
            "administrator name {name:?}: use 1 to 48 of a-z, 0-9, '-', '_' and '.', starting \
             with a letter or digit"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::CaKind;

    fn fleet() -> CertificateAuthority {
        CertificateAuthority::generate(
            CaKind::Fleet,
            "test fleet",
            Duration::from_secs(3650 * 86_400),
            OffsetDateTime::now_utc(),
        )
        .unwrap()
    }

    #[test]
    fn issues_a_short_lived_admin_certificate_the_server_accepts() {
        let now = OffsetDateTime::now_utc();
        let made = issue(&fleet(), "ops", DEFAULT_LIFETIME, now).unwrap();
        assert_eq!(made.cert.common_name, "admin:ops");
        assert!(made.key_pem.contains("PRIVATE KEY"));
        let (from, to) = (
            made.cert.not_before.unix_timestamp(),
            made.cert.not_after.unix_timestamp(),
        );
        assert_eq!(refusal(from, to), None);
        let max = issue(&fleet(), "ops", MAX_LIFETIME, now).unwrap();
        assert_eq!(
            refusal(
                max.cert.not_before.unix_timestamp(),
                max.cert.not_after.unix_timestamp()
            ),
            None
        );
    }

    #[test]
    fn long_lifetimes_are_refused_when_issued_and_when_presented() {
        let asked = MAX_LIFETIME + Duration::from_secs(86_400);
        let error = issue(&fleet(), "ops", asked, OffsetDateTime::now_utc()).unwrap_err();
        assert!(error.to_string().contains("at most 31 days"), "{error}");
        let year = 365 * 86_400;
        let why = refusal(0, year).expect("a one-year certificate is refused");
        assert!(
            why.contains("365 days") && why.contains("admin issue"),
            "{why}"
        );
    }

    #[test]
    fn names_that_could_confuse_the_audit_log_are_refused() {
        let now = OffsetDateTime::now_utc();
        for name in ["", "a:b", "Ops", "-x", "a b", "é", &"x".repeat(49)] {
            assert!(
                issue(&fleet(), name, DEFAULT_LIFETIME, now).is_err(),
                "{name:?} accepted"
            );
        }
    }
}
