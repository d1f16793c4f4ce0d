use super::*;
use crate::install::rollback;
use crate::install::testutil::{read, spec};
use std::os::unix::fs::MetadataExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;
const DIR: &str = "/etc/calico/certs/calico-node";
const NAMES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

/// The three files of generation `marker`; every file carries the marker.
fn set(marker: &str) -> Vec<FileSpec> {
    NAMES
        .iter()
        .map(|name| {
            let mode = if *name == "key.pem" { 0o640 } else { 0o644 };
            spec(
                &format!("{DIR}/{name}"),
                &format!("gen={marker} {name}"),
                mode,
            )
        })
        .collect()
}

/// The marker every visible file carries: `Some(None)` when all are absent, `None` when the
/// files disagree (a reader could pair a key with the wrong certificate).
fn visible(root: &tempfile::TempDir) -> Option<Option<String>> {
    let dir = root.path().join(&DIR[1..]);
    let markers: Vec<Option<String>> = NAMES
        .iter()
        .map(|name| {
            let text = read(&dir.join(name))?;
            Some(text.split_whitespace().next()?.to_owned())
        })
        .collect();
    markers
        .iter()
        .all(|m| *m == markers[0])
        .then(|| markers[0].clone())
}

fn generation_dirs(root: &tempfile::TempDir) -> Result<usize, std::io::Error> {
    let state = root.path().join(&DIR[1..]).join(".calseg");
    let entries = std::fs::read_dir(state)?.collect::<Result<Vec<_>, _>>()?;
    Ok(entries
        .iter()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .count())
}

#[test]
fn installs_switches_prunes_and_rolls_back() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = Root::new(tmp.path());
    let dir = tmp.path().join(&DIR[1..]);

    let first = install_set(&root, &set("A"), true)?;
    assert_eq!(visible(&tmp), Some(Some("gen=A".into())));
    assert_eq!(std::fs::metadata(&dir)?.mode() & 0o7777, 0o750);
    assert_eq!(
        std::fs::metadata(dir.join("key.pem"))?.mode() & 0o7777,
        0o640
    );
    assert!(
        std::fs::symlink_metadata(dir.join("cert.pem"))?
            .file_type()
            .is_symlink()
    );
    assert!(!install_set(&root, &set("A"), true)?.changed());
    assert!(
        plan_set(&root, &set("B"))?
            .iter()
            .all(PlannedChange::changes)
    );

    install_set(&root, &set("B"), true)?;
    let third = install_set(&root, &set("C"), true)?;
    assert_eq!(visible(&tmp), Some(Some("gen=C".into())));
    assert_eq!(generation_dirs(&tmp)?, 2, "current and previous only");

    rollback(&root, &third)?;
    assert_eq!(visible(&tmp), Some(Some("gen=B".into())));
    assert_eq!(generation_dirs(&tmp)?, 1);
    let again = rollback(&root, &third);
    assert!(
        matches!(again, Err(InstallError::NoRollback { .. })),
        "{again:?}"
    );

    let fresh = tempfile::tempdir()?;
    let receipt = install_set(&Root::new(fresh.path()), &set("A"), true)?;
    rollback(&Root::new(fresh.path()), &receipt)?;
    assert_eq!(
        visible(&fresh),
        Some(None),
        "first install rolled back to nothing"
    );
    drop(first);
    Ok(())
}

#[test]
fn adopts_manual_files_and_rolls_back_to_them() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = Root::new(tmp.path());
    let dir = tmp.path().join(&DIR[1..]);
    std::fs::create_dir_all(&dir)?;
    for name in NAMES {
        std::fs::write(dir.join(name), format!("gen=manual {name}"))?;
    }
    let receipt = install_set(&root, &set("A"), true)?;
    assert_eq!(visible(&tmp), Some(Some("gen=A".into())));
    rollback(&root, &receipt)?;
    assert_eq!(visible(&tmp), Some(Some("gen=manual".into())));
    Ok(())
}

#[test]
fn refuses_foreign_symlinks_and_bad_sets() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = Root::new(tmp.path());
    let dir = tmp.path().join(&DIR[1..]);
    std::fs::create_dir_all(&dir)?;
    let victim = tmp.path().join("victim");
    std::os::unix::fs::symlink(&victim, dir.join("key.pem"))?;
    let err = install_set(&root, &set("A"), true);
    assert!(matches!(err, Err(InstallError::Symlink { .. })), "{err:?}");
    assert!(!victim.exists());

    let mut mixed = set("A");
    mixed[0].path = "/etc/calico/elsewhere/ca.pem".into();
    let err = install_set(&root, &mixed, true);
    assert!(matches!(err, Err(InstallError::BadSet { .. })), "{err:?}");
    let twice = [set("A")[1].clone(), set("A")[1].clone()];
    let err = install_set(&root, &twice, true);
    assert!(matches!(err, Err(InstallError::BadSet { .. })), "{err:?}");
    assert!(matches!(
        install_set(&root, &[], true),
        Err(InstallError::BadSet { .. })
    ));
    Ok(())
}

/// How the identity directory looks before the interrupted install.
#[derive(Debug, Clone, Copy)]
enum Before {
    Nothing,
    Calseg,
    Manual,
}

fn prepare_before(root: &Root, tmp: &tempfile::TempDir, before: Before) -> TestResult {
    let dir = tmp.path().join(&DIR[1..]);
    match before {
        Before::Nothing => {}
        Before::Calseg => {
            install_set(root, &set("Z"), true)?;
            install_set(root, &set("A"), true)?;
        }
        Before::Manual => {
            std::fs::create_dir_all(&dir)?;
            for name in NAMES {
                std::fs::write(dir.join(name), format!("gen=A {name}"))?;
            }
        }
    }
    Ok(())
}

/// Kills the install after each step in turn, from each starting state: the visible files
/// always carry one generation (old or new), and a later install and rollback cope with
/// whatever was left behind.
#[test]
fn interrupted_install_never_shows_a_mixed_set() -> TestResult {
    for before in [Before::Nothing, Before::Calseg, Before::Manual] {
        for fail_at in 0.. {
            let tmp = tempfile::tempdir()?;
            let root = Root::new(tmp.path());
            prepare_before(&root, &tmp, before)?;
            let old = visible(&tmp);
            let mut steps = 0;
            let mut hook = || {
                steps += 1;
                if steps > fail_at {
                    Err(std::io::Error::other("killed"))
                } else {
                    Ok(())
                }
            };
            let outcome = install_set_with(&root, &set("B"), true, &mut hook);
            let seen = visible(&tmp);
            let new = Some(Some("gen=B".to_owned()));
            assert!(
                seen == old || seen == new,
                "{before:?} step {fail_at}: {seen:?}"
            );

            let later = install_set(&root, &set("C"), true)?;
            assert_eq!(visible(&tmp), Some(Some("gen=C".into())));
            let dir = tmp.path().join(&DIR[1..]);
            assert_eq!(
                std::fs::read_dir(&dir)?.count(),
                4,
                "three links and .calseg"
            );
            assert!(generation_dirs(&tmp)? <= 2);
            rollback(&root, &later)?;
            assert_eq!(visible(&tmp), seen, "{before:?} step {fail_at}");
            if outcome.is_ok() {
                let steps = match before {
                    Before::Nothing => 8, // 3 links, 3 files, publish (2)
                    Before::Calseg => 5,  // 3 files, publish (2)
                    Before::Manual => 13, // adopt 3 + publish 2 + relink 3, then 3 + 2
                };
                assert_eq!(fail_at, steps, "{before:?}: steps interrupted");
                break;
            }
        }
    }
    Ok(())
}
