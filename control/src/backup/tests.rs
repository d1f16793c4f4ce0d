#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The backup container and its age encryption: round trips, and every refusal.

use std::path::Path;
use std::time::Duration;

use time::OffsetDateTime;

use super::age::{self, Identity, Recipient};
use super::*;
use crate::pki::{CaKind, CertificateAuthority};
use crate::store::{SNAPSHOT_FORMAT, StoreSnapshot};

const VERSION: &str = "1.4.2";

struct Fixture {
    fleet: CertificateAuthority,
    contents: BackupContents,
    now: OffsetDateTime,
}

fn file(name: &str, mode: u32, contents: &str) -> BackupFile {
    BackupFile {
        name: name.into(),
        mode,
        contents: contents.as_bytes().to_vec(),
    }
}

fn fixture() -> Fixture {
    let now = OffsetDateTime::now_utc();
    let year = Duration::from_secs(365 * 86_400);
    let fleet = CertificateAuthority::generate(CaKind::Fleet, "fleet", year, now).unwrap();
    let etcd = CertificateAuthority::generate(CaKind::EtcdClient, "etcd", year, now).unwrap();
    let tls = fleet.issue_server(&["server".into()], year, now).unwrap();
    let contents = BackupContents {
        store: StoreSnapshot {
            format: SNAPSHOT_FORMAT,
            ..StoreSnapshot::default()
        },
        ca_files: vec![
            file("fleet.pem", 0o644, fleet.cert_pem()),
            file("fleet-key.pem", 0o600, &fleet.key_pem()),
            file("etcd-client.pem", 0o644, etcd.cert_pem()),
            file("etcd-client-key.pem", 0o600, &etcd.key_pem()),
            file("next-fleet.pem", 0o644, "a later rotation's file"),
        ],
        tls_cert: file("server.pem", 0o644, &tls.cert_pem),
        tls_key: file("server-key.pem", 0o600, &tls.key_pem),
    };
    Fixture {
        fleet,
        contents,
        now,
    }
}

impl Fixture {
    fn pin(&self) -> String {
        self.fleet.fingerprint_sha256()
    }

    fn sealed(&self) -> Vec<u8> {
        seal(&self.contents, &self.fleet, VERSION, self.now).unwrap()
    }

    fn open(&self, bytes: &[u8]) -> Result<VerifiedBackup, BackupError> {
        open(bytes, &self.pin(), VERSION, self.now)
    }
}

#[test]
fn a_backup_opens_to_what_was_sealed() {
    let f = fixture();
    let bytes = f.sealed();
    assert!(bytes.starts_with(MAGIC));
    let opened = f.open(&bytes).unwrap();
    assert_eq!(opened.contents, f.contents);
    assert_eq!(opened.header.calseg_version, VERSION);
    assert_eq!(opened.header.fleet_ca_fingerprint, f.pin());
    // An older calseg's backup opens too.
    open(&bytes, &f.pin(), "2.0.0", f.now).unwrap();
}

#[test]
fn another_fleets_pin_is_refused() {
    let f = fixture();
    let other = fixture();
    let error = open(&f.sealed(), &other.pin(), VERSION, f.now).unwrap_err();
    assert!(matches!(error, BackupError::PinMismatch { .. }), "{error}");
    assert!(error.to_string().contains(&f.pin()), "{error}");
}

#[test]
fn a_backup_signed_by_another_key_is_refused_even_with_the_right_certificate() {
    // An attacker with the fleet CA certificate (public) but not its key: re-signs the file
    // with their own CA's key while keeping the pinned certificate in the header.
    let f = fixture();
    let attacker = fixture();
    // seal refuses contents whose fleet.pem is not the signer's: forge below the API.
    assert!(seal(&f.contents, &attacker.fleet, VERSION, f.now).is_err());
    let bytes = f.sealed();
    let signed_end = signed_len(&bytes);
    let mut forged = bytes[..signed_end].to_vec();
    let signature =
        rcgen::SigningKey::sign(attacker.fleet.issuer.key(), &bytes[..signed_end]).unwrap();
    forged.extend_from_slice(&u16::try_from(signature.len()).unwrap().to_be_bytes());
    forged.extend_from_slice(&signature);
    let error = f.open(&forged).unwrap_err();
    assert!(matches!(error, BackupError::BadSignature), "{error}");
}

/// Where the signed part of `bytes` ends.
fn signed_len(bytes: &[u8]) -> usize {
    let at = MAGIC.len() + 4;
    let header = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let at = at + 4 + header;
    let payload = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
    at + 8 + payload
}

#[test]
fn a_pin_that_is_not_sha256_hex_is_refused() {
    for pin in [
        "",
        "sha256:xyz",
        "md5:00",
        &format!("sha256:{}", "a".repeat(63)),
    ] {
        assert!(
            matches!(parse_pin(pin), Err(BackupError::BadPin(_))),
            "{pin}"
        );
    }
    let upper = format!("SHA256:{}", "A".repeat(64));
    assert!(parse_pin(&upper).is_err());
    assert_eq!(
        parse_pin(&format!(" sha256:{} ", "A".repeat(64))).unwrap(),
        format!("sha256:{}", "a".repeat(64))
    );
}

#[test]
fn a_backup_of_a_newer_calseg_is_refused() {
    let f = fixture();
    let bytes = seal(&f.contents, &f.fleet, "1.5.0", f.now).unwrap();
    let error = f.open(&bytes).unwrap_err();
    assert!(matches!(error, BackupError::NewerCalseg { .. }), "{error}");
    assert!(error.to_string().contains("1.5.0"), "{error}");
    let bytes = seal(&f.contents, &f.fleet, "1.4.2-rc.1", f.now).unwrap();
    f.open(&bytes).unwrap();
}

#[test]
fn a_newer_format_is_refused_before_anything_else_is_read() {
    let f = fixture();
    let mut bytes = f.sealed();
    bytes[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&2u32.to_be_bytes());
    let error = f.open(&bytes).unwrap_err();
    assert!(
        matches!(
            error,
            BackupError::NewerFormat {
                found: 2,
                supported: 1
            }
        ),
        "{error}"
    );
}

#[test]
fn a_truncated_backup_is_refused_at_every_length() {
    let f = fixture();
    let bytes = f.sealed();
    let signed = signed_len(&bytes);
    let mut cuts = vec![
        1,
        5,
        13,
        14,
        16,
        18,
        20,
        100,
        signed / 2,
        signed - 1,
        signed,
        signed + 1,
    ];
    cuts.extend((0..bytes.len()).step_by(bytes.len() / 50));
    cuts.push(bytes.len() - 1);
    for cut in cuts.into_iter().filter(|&c| c > 0 && c < bytes.len()) {
        let error = f.open(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(error, BackupError::Truncated { .. }),
            "cut at {cut}: {error}"
        );
    }
    assert!(matches!(f.open(&[]), Err(BackupError::NotABackup)));
}

#[test]
fn one_flipped_byte_anywhere_is_refused() {
    let f = fixture();
    let bytes = f.sealed();
    let signed = signed_len(&bytes);
    let mut offsets: Vec<usize> = (0..bytes.len()).step_by(97).collect();
    offsets.extend([
        0,
        13,
        14,
        17,
        18,
        21,
        signed - 1,
        signed,
        signed + 2,
        bytes.len() - 1,
    ]);
    for at in offsets {
        for flip in [0x01u8, 0x80] {
            let mut damaged = bytes.clone();
            damaged[at] ^= flip;
            let error = f
                .open(&damaged)
                .expect_err(&format!("byte {at} ^ {flip:#x} accepted"));
            // In the payload, the signature is what catches it.
            if at > signed - 100 && at < signed {
                assert!(
                    matches!(error, BackupError::BadSignature),
                    "byte {at}: {error}"
                );
            }
        }
    }
}

#[test]
fn bytes_after_the_signature_are_refused() {
    let f = fixture();
    let mut bytes = f.sealed();
    bytes.push(0);
    assert!(matches!(f.open(&bytes), Err(BackupError::TrailingBytes(1))));
}

#[test]
fn something_else_is_not_a_backup() {
    let f = fixture();
    assert!(matches!(
        f.open(b"PK\x03\x04 a zip file"),
        Err(BackupError::NotABackup)
    ));
}

#[test]
fn a_backup_after_a_finished_etcd_client_ca_rotation_holds_the_ca_in_force() {
    let f = fixture();
    let year = Duration::from_secs(365 * 86_400);
    let rotated = CertificateAuthority::generate(CaKind::EtcdClient, "new", year, f.now).unwrap();
    let mut after = f.contents.clone();
    // `finish` deletes init's key and keeps the new CA as etcd-client.active.pem.
    after.ca_files.retain(|c| c.name != "etcd-client-key.pem");
    after
        .ca_files
        .push(file("etcd-client.active.pem", 0o644, rotated.cert_pem()));
    let sealed = seal(&after, &f.fleet, VERSION, f.now);
    let error = sealed.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("etcd-client.active-key.pem is missing"),
        "{error}"
    );
    after.ca_files.push(file(
        "etcd-client.active-key.pem",
        0o600,
        &rotated.key_pem(),
    ));
    let sealed = seal(&after, &f.fleet, VERSION, f.now).unwrap();
    let opened = f.open(&sealed).unwrap();
    assert_eq!(opened.contents, after);
}

#[test]
fn contents_a_restore_could_not_use_are_never_sealed() {
    let f = fixture();
    let mut missing = f.contents.clone();
    missing.ca_files.retain(|c| c.name != "etcd-client-key.pem");
    let error = seal(&missing, &f.fleet, VERSION, f.now).unwrap_err();
    assert!(
        error.to_string().contains("etcd-client-key.pem is missing"),
        "{error}"
    );

    let mut escaping = f.contents.clone();
    escaping.ca_files.push(file("../../etc/passwd", 0o644, "x"));
    let error = seal(&escaping, &f.fleet, VERSION, f.now).unwrap_err();
    assert!(
        error.to_string().contains("not a plain file name"),
        "{error}"
    );

    let mut mismatched = f.contents.clone();
    let other = fixture();
    mismatched.ca_files[1] = other.contents.ca_files[1].clone();
    let error = seal(&mismatched, &f.fleet, VERSION, f.now).unwrap_err();
    assert!(error.to_string().contains("fleet-key.pem"), "{error}");

    let mut bad_store = f.contents.clone();
    bad_store.store.format = 99;
    let error = seal(&bad_store, &f.fleet, VERSION, f.now).unwrap_err();
    assert!(error.to_string().contains("store snapshot"), "{error}");
}

#[test]
fn versions_compare_by_number() {
    assert_eq!(version_newer("1.10.0", "1.9.9"), Some(true));
    assert_eq!(version_newer("1.9.9", "1.10.0"), Some(false));
    assert_eq!(version_newer("1.2.3", "1.2.3"), Some(false));
    assert_eq!(version_newer("2.0.0-rc.1", "1.9.0"), Some(true));
    assert_eq!(version_newer("1.2", "1.2.3"), None);
    assert_eq!(version_newer("x", "1.2.3"), None);
}

// --- age ---

#[test]
fn age_round_trips_every_size() {
    for len in [0usize, 1, 1000, 65_535, 65_536, 65_537, 3 * 65_536, 200_000] {
        let identity = Identity::generate().unwrap();
        let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let sealed = age::encrypt(&plain, &identity.recipient()).unwrap();
        assert_eq!(
            age::decrypt(&sealed, &[identity]).unwrap(),
            plain,
            "len {len}"
        );
    }
}

#[test]
fn age_refuses_the_wrong_key_a_flipped_byte_and_a_cut() {
    let identity = Identity::generate().unwrap();
    let plain = vec![7u8; 150_000];
    let sealed = age::encrypt(&plain, &identity.recipient()).unwrap();
    let keys = [identity];
    let wrong = Identity::generate().unwrap();
    let error = age::decrypt(&sealed, &[wrong]).unwrap_err();
    assert!(
        error.to_string().contains("none of the given keys"),
        "{error}"
    );
    for at in (0..sealed.len())
        .step_by(4999)
        .chain([sealed.len() - 1, 30, 60, 100])
    {
        let mut damaged = sealed.clone();
        damaged[at] ^= 0x04;
        assert!(
            age::decrypt(&damaged, &keys).is_err(),
            "flip at {at} accepted"
        );
    }
    for cut in [20, 60, 150, 200, 70_000, 131_088, sealed.len() - 1] {
        assert!(
            age::decrypt(&sealed[..cut], &keys).is_err(),
            "cut at {cut} accepted"
        );
    }
    // Cut exactly at a chunk boundary: the last full chunk is not flagged last.
    let header = sealed.len() - 16 - (150_000 + 3 * 16);
    let boundary = header + 16 + 2 * (65_536 + 16);
    assert!(age::decrypt(&sealed[..boundary], &keys).is_err());
}

#[test]
fn keys_parse_in_the_forms_age_keygen_writes() {
    let identity = Identity::generate().unwrap();
    let text = format!(
        "# created: now\n# public key: {}\n{}\n",
        identity.recipient().encode(),
        identity.encode()
    );
    let parsed = Identity::parse_file(&text, Path::new("key.txt")).unwrap();
    assert_eq!(parsed[0].recipient(), identity.recipient());
    assert_eq!(
        Recipient::parse(&identity.recipient().encode()).unwrap(),
        identity.recipient()
    );
    assert!(identity.encode().starts_with("AGE-SECRET-KEY-1"));
    assert!(identity.recipient().encode().starts_with("age1"));
    // A typo fails the checksum; a secret key is not a recipient; an empty file has no key.
    let mut typo = identity.recipient().encode();
    typo.replace_range(10..11, if &typo[10..11] == "q" { "p" } else { "q" });
    assert!(Recipient::parse(&typo).is_err());
    assert!(Recipient::parse(&identity.encode()).is_err());
    assert!(Identity::parse_file("# nothing\n", Path::new("k")).is_err());
    let error = Identity::parse_file(&identity.recipient().encode(), Path::new("k")).unwrap_err();
    assert!(error.to_string().contains("line 1"), "{error}");
}

#[test]
fn a_file_from_the_age_cli_decrypts_and_its_key_is_read() {
    // Made once with age 1.1.1 (`age-keygen -o identity.txt`, `age -r age1mtx... -o
    // from-age-cli.age`); the key is a throwaway that protects nothing else.
    let key = include_str!("testdata/identity.txt");
    let file = include_bytes!("testdata/from-age-cli.age");
    let identities = Identity::parse_file(key, Path::new("identity.txt")).unwrap();
    assert_eq!(
        identities[0].recipient().encode(),
        "age1mtx95l7nzjzvdaeus7jre7y4dee0lae8u9eald55fvw003xhacqqhl94l7"
    );
    let plain = age::decrypt(file, &identities).unwrap();
    assert_eq!(plain, b"calseg backup interop vector\n");
}
