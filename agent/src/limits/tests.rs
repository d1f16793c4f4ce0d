//! The limits, one by one: each refusal and the nearest accepted value.

use super::*;
use crate::testutil::{TestCa, TestResult, identity, manifest};
use std::os::unix::fs::symlink;

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn normalize_drops_dots_and_slashes_and_refuses_escapes() {
    let ok = |p: &str| normalize(p).ok();
    assert_eq!(ok("/etc//calico/./a"), Some(PathBuf::from("/etc/calico/a")));
    assert_eq!(ok("/etc/calico/a/"), Some(PathBuf::from("/etc/calico/a")));
    for bad in [
        "/etc/calico/../../root/.ssh",
        "/etc/calico/..",
        "etc/calico/a",
        "./etc/calico",
        "",
        "/",
        "/./",
        "/etc/calico/a\0b",
    ] {
        assert!(normalize(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn paths_must_be_strictly_under_an_allowed_directory() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = Root::new(tmp.path());
    let l = limits();
    for good in [
        "/etc/calico/certs/node/key.pem",
        "/etc/calico/calico.env",
        "/etc/cni/net.d/10-calico.conflist",
        "/etc//calico/./x",
    ] {
        assert_eq!(l.check_path(&root, good), Ok(()), "{good}");
    }
    for bad in [
        "/etc/calico",
        "/etc/cni/net.d",
        "/etc/calicox/a",
        "/etc/calico/../shadow",
        "/root/.ssh/authorized_keys",
        "/etc/systemd/system/x.service",
        "/etc/cni/net.d.bak/x",
        "etc/calico/a",
        "/etc/calico/a\0",
    ] {
        assert!(l.check_path(&root, bad).is_err(), "{bad}");
    }
    Ok(())
}

#[test]
fn symlinks_leaving_the_allowed_tree_are_refused_under_the_root_prefix() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    let root = Root::new(tmp.path());
    let calico = tmp.path().join("etc/calico");
    std::fs::create_dir_all(&calico)?;
    // A parent inside the tree pointing out of it (absolute and relative).
    symlink(outside.path(), calico.join("certs"))?;
    symlink("../../root", calico.join("up"))?;
    std::fs::create_dir_all(tmp.path().join("root"))?;
    // A link inside the tree that stays inside it, as calseg's own stable names do.
    std::fs::create_dir_all(calico.join("node/.calseg/1"))?;
    std::fs::write(calico.join("node/.calseg/1/cert.pem"), "x")?;
    symlink("1", calico.join("node/.calseg/current"))?;
    symlink(".calseg/current/cert.pem", calico.join("node/cert.pem"))?;
    // Dangling links: relative and plain stays in its directory; absolute does not.
    symlink("missing.pem", calico.join("node/key.pem"))?;
    symlink("/root/.ssh/authorized_keys", calico.join("node/ca.pem"))?;
    let l = limits();
    assert_eq!(l.check_path(&root, "/etc/calico/node/cert.pem"), Ok(()));
    assert_eq!(l.check_path(&root, "/etc/calico/node/key.pem"), Ok(()));
    for bad in [
        "/etc/calico/certs/key.pem",
        "/etc/calico/up/x",
        "/etc/calico/node/ca.pem",
    ] {
        let err = l.check_path(&root, bad);
        assert!(
            err.as_ref().is_err_and(|e| e.contains("symbolic link")),
            "{bad}: {err:?}"
        );
    }
    // The allowed directory itself a link out of the tree (`/etc/cni/net.d -> /root/.ssh`).
    std::fs::create_dir_all(tmp.path().join("etc/cni"))?;
    symlink(outside.path(), tmp.path().join("etc/cni/net.d"))?;
    let err = l.check_path(&root, "/etc/cni/net.d/authorized_keys");
    assert!(err.is_err_and(|e| e.contains("above the allowed directory")));
    Ok(())
}

#[test]
fn unit_globs_match_whole_names() {
    assert!(glob_match("calico-*.service", "calico-node.service"));
    assert!(glob_match("calico-*.service", "calico-.service"));
    assert!(glob_match("*", "anything"));
    assert!(glob_match("a?c*.service", "abcx.service"));
    assert!(glob_match("*-*.service", "a-b-c.service"));
    assert!(!glob_match("calico-*.service", "calico-node.service.d"));
    assert!(!glob_match("calico-*.service", "xcalico-node.service"));
    assert!(!glob_match("calico-*.service", "calico-node.target"));
    assert!(!glob_match("a?c.service", "ac.service"));
}

#[test]
fn only_allowed_services_restart_never_targets_or_calseg_itself() {
    let l = limits();
    assert_eq!(check_unit(&l, "calico-node.service"), Ok(()));
    for bad in [
        "sshd.service",
        "reboot.target",
        "poweroff.target",
        "calico-node.target",
        "calico-node.socket",
        "calico-x.service/../sshd.service",
        "",
    ] {
        assert!(check_unit(&l, bad).is_err(), "{bad}");
    }
    // Whatever agent.toml says, calseg's own units and targets stay refused.
    let wide = Limits {
        allowed_units: vec!["*".into()],
        ..limits()
    };
    assert_eq!(check_unit(&wide, "sshd.service"), Ok(()));
    for bad in [
        "calseg-agent.service",
        "calseg-server.service",
        "reboot.target",
    ] {
        assert!(check_unit(&wide, bad).is_err(), "{bad}");
    }
    assert!(check_unit_pattern("calico-*.service").is_ok());
    assert!(check_unit_pattern("*.target").is_err());
    assert!(check_unit_pattern("*").is_err());
    assert!(check_unit_pattern("a/b.service").is_err());
}

#[test]
fn modes_with_special_or_world_writable_bits_are_refused() {
    for good in [0o600, 0o640, 0o644, 0o755, 0o775, 0o400, 0] {
        assert_eq!(check_mode(good), Ok(()), "{good:o}");
    }
    for bad in [0o4777, 0o4600, 0o2640, 0o1644, 0o602, 0o666, 0o777, 0o10644] {
        assert!(check_mode(bad).is_err(), "{bad:o}");
    }
}

#[test]
fn ca_bundle_is_certificate_blocks_and_whitespace_only() -> TestResult {
    let a = TestCa::new("a")?.cert_pem;
    let b = TestCa::new("b")?.cert_pem;
    assert_eq!(check_ca_bundle(&a), Ok(()));
    assert_eq!(check_ca_bundle(&format!("\n  {a}\n\n{b}\n\n")), Ok(()));
    let key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
    let ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostile attacker@evil\n";
    let garbage =
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n".to_owned();
    let cases = [
        ("text before", format!("{ssh}{a}")),
        ("text between", format!("{a}{ssh}{b}")),
        ("text after", format!("{a}{ssh}")),
        ("a private key", format!("{a}{key}")),
        ("garbage in a block", garbage),
        ("empty", String::new()),
        ("only text", "ETCD CA\n".into()),
        ("unterminated", a.replace("-----END CERTIFICATE-----", "")),
        (
            "a header",
            a.replacen("-----\n", "-----\nProc-Type: 4,ENCRYPTED\n", 1),
        ),
    ];
    for (what, text) in cases {
        assert!(check_ca_bundle(&text).is_err(), "{what}");
    }
    let err = check_ca_bundle(&format!("{a}{key}"))
        .err()
        .unwrap_or_default();
    assert!(err.contains("PRIVATE KEY"), "{err}");
    Ok(())
}

#[test]
fn the_whole_manifest_is_checked_and_each_violation_names_field_and_value() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = Root::new(tmp.path());
    let mut m = manifest(vec![identity("calico-node", &["calico-node.service"])]);
    m.etcd.ca_bundle_pem = TestCa::new("etcd")?.cert_pem;
    assert_eq!(limits().check_manifest(&root, &m), []);

    let mut bad = identity("calico-node", &["sshd.service", "calico-node.service"]);
    bad.files.key_mode = 0o4777;
    bad.files.group = "users".into();
    bad.render.env_file = Some("/etc/systemd/system/x.service".into());
    m.identities.push(bad);
    m.etcd.ca_bundle_pem = format!("ssh-rsa AAAA\n{}", m.etcd.ca_bundle_pem);
    let found: Vec<String> = limits()
        .check_manifest(&root, &m)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found.len(), 5, "{found:#?}");
    let expect = [
        "etcd.ca_bundle_pem = \"ssh-rsa AAAA",
        "identities[calico-node].render.env_file = \"/etc/systemd/system/x.service\"",
        "identities[calico-node].files.group = \"users\"",
        "identities[calico-node].files.key_mode = \"0o4777\"",
        "identities[calico-node].restart = \"sshd.service\"",
    ];
    for (got, want) in found.iter().zip(expect) {
        assert!(got.contains(want), "{got} lacks {want}");
        assert!(got.starts_with("refused by agent.toml limits: "), "{got}");
    }
    Ok(())
}
