//! Test fixtures shared by the agent's unit tests: a CA that signs CSRs, a manifest whose
//! files are owned by whoever runs the tests.

use calseg_api::manifest::{EtcdTarget, Identity, IdentityFiles, Manifest, Render};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A CA for tests.
pub(crate) struct TestCa {
    pub issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        })
    }

    /// Signs a CSR for the given validity, with a serial derived from `serial`.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        serial: u64,
    ) -> Result<String, rcgen::Error> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)?;
        csr.params.not_before = not_before;
        csr.params.not_after = not_after;
        let mut bytes = vec![0x40u8];
        bytes.extend_from_slice(&serial.to_be_bytes());
        csr.params.serial_number = Some(SerialNumber::from_slice(&bytes));
        Ok(csr.signed_by(&self.issuer)?.pem())
    }

    /// A server certificate and key for `sans`.
    pub fn server_cert(&self, sans: &[&str]) -> Result<(String, String), rcgen::Error> {
        let names: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(
            DnType::CommonName,
            sans.first().copied().unwrap_or("server"),
        );
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The running user's and group's names.
pub(crate) fn me() -> (String, String) {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    let user = nix::unistd::User::from_uid(uid).ok().flatten();
    let group = nix::unistd::Group::from_gid(gid).ok().flatten();
    (
        user.map_or_else(|| uid.to_string(), |u| u.name),
        group.map_or_else(|| gid.to_string(), |g| g.name),
    )
}

/// An identity of `component` on node `n1`, restarting `units`.
pub(crate) fn identity(component: &str, units: &[&str]) -> Identity {
    let (owner, group) = me();
    let dir = format!("/etc/calico/certs/{component}");
    Identity {
        component: component.into(),
        etcd_user: format!("{component}.n1"),
        files: IdentityFiles {
            ca: format!("{dir}/ca.pem"),
            cert: format!("{dir}/cert.pem"),
            key: format!("{dir}/key.pem"),
            dir,
            owner,
            group,
            key_mode: 0o600,
            cert_mode: 0o644,
        },
        render: Render {
            env_file: Some(format!("/etc/calico/{component}.env")),
            ..Render::default()
        },
        restart: units.iter().map(|u| (*u).to_owned()).collect(),
        probe_key: format!("/calico/probe/{component}"),
        issuer: None,
    }
}

/// A manifest for node `n1` with `identities`.
pub(crate) fn manifest(identities: Vec<Identity>) -> Manifest {
    Manifest {
        node: "n1".into(),
        revision: "rev1".into(),
        etcd: EtcdTarget {
            endpoints: vec!["https://127.0.0.1:2379".into()],
            ca_bundle_pem: "ETCD CA\n".into(),
        },
        identities,
        lifetime_secs: 30 * 86_400,
        renew_after: 2.0 / 3.0,
        policy_revision: None,
        fleet_ca: None,
    }
}
