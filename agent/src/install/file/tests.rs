use super::*;
use crate::install::testutil::{read, spec};
use crate::install::{Change, rollback};
use std::os::unix::fs::MetadataExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;
const ENV: &str = "/etc/calico/calico.env";

#[test]
fn installs_updates_backs_up_and_rolls_back() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = Root::new(tmp.path());
    let on_disk = tmp.path().join("etc/calico/calico.env");

    let first = install_file(&root, &spec(ENV, "v1", 0o600), true)?;
    assert!(first.changed());
    assert_eq!(read(&on_disk).as_deref(), Some("v1"));
    assert_eq!(std::fs::metadata(&on_disk)?.mode() & 0o7777, 0o600);

    let again = install_file(&root, &spec(ENV, "v1", 0o600), true)?;
    assert!(!again.changed(), "identical install must be a no-op");

    let second = install_file(&root, &spec(ENV, "v2", 0o644), true)?;
    let prev = tmp.path().join("etc/calico/calico.env.calseg-prev");
    assert_eq!(read(&on_disk).as_deref(), Some("v2"));
    assert_eq!(read(&prev).as_deref(), Some("v1"));
    assert_eq!(std::fs::metadata(&prev)?.mode() & 0o7777, 0o600);

    rollback(&root, &second)?;
    assert_eq!(read(&on_disk).as_deref(), Some("v1"));
    assert_eq!(std::fs::metadata(&on_disk)?.mode() & 0o7777, 0o600);
    rollback(&root, &first)?;
    assert!(
        !on_disk.exists(),
        "rolling back a first install removes the file"
    );
    Ok(())
}

#[test]
fn plan_reports_without_touching() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = Root::new(tmp.path());
    assert_eq!(
        plan_file(&root, &spec(ENV, "v1", 0o600))?.change,
        Change::Create
    );
    assert!(!tmp.path().join("etc").exists());
    install_file(&root, &spec(ENV, "v1", 0o600), false)?;
    assert!(!plan_file(&root, &spec(ENV, "v1", 0o600))?.changes());
    let plan = plan_file(&root, &spec(ENV, "v1", 0o640))?;
    let mode_only = Change::Update {
        contents: false,
        mode: true,
        owner: false,
    };
    assert_eq!(plan.change, mode_only);
    Ok(())
}

#[test]
fn symlink_at_target_is_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = Root::new(tmp.path());
    std::fs::create_dir_all(tmp.path().join("etc/calico"))?;
    let victim = tmp.path().join("shadow");
    std::fs::write(&victim, "untouched")?;
    std::os::unix::fs::symlink(&victim, tmp.path().join("etc/calico/calico.env"))?;
    let err = install_file(&root, &spec(ENV, "evil", 0o644), true);
    assert!(matches!(err, Err(InstallError::Symlink { .. })), "{err:?}");
    assert_eq!(read(&victim).as_deref(), Some("untouched"));
    Ok(())
}

#[test]
fn unknown_owner_is_a_clear_error() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut bad = spec(ENV, "x", 0o644);
    bad.owner = "no-such-user-calseg".into();
    let err = install_file(&Root::new(tmp.path()), &bad, false);
    let Err(err @ InstallError::UnknownUser { .. }) = err else {
        panic!("expected UnknownUser, got {err:?}");
    };
    assert!(err.to_string().contains("no-such-user-calseg"));
    assert!(err.to_string().contains(ENV));
    Ok(())
}

/// Kills the install after each step in turn: the target always holds the old or the new
/// contents, and a later install copes with whatever was left behind.
#[test]
fn interrupted_install_leaves_old_or_new() -> TestResult {
    for fail_at in 0.. {
        let tmp = tempfile::tempdir()?;
        let root = Root::new(tmp.path());
        let on_disk = tmp.path().join("etc/calico/calico.env");
        install_file(&root, &spec(ENV, "old", 0o640), true)?;
        let mut steps = 0;
        let mut hook = || {
            steps += 1;
            if steps > fail_at {
                Err(std::io::Error::other("killed"))
            } else {
                Ok(())
            }
        };
        let outcome = install_file_with(&root, &spec(ENV, "new", 0o640), true, &mut hook);
        let seen = read(&on_disk);
        assert!(matches!(seen.as_deref(), Some("old" | "new")), "{seen:?}");
        install_file(&root, &spec(ENV, "later", 0o640), true)?;
        assert_eq!(read(&on_disk).as_deref(), Some("later"));
        let names = std::fs::read_dir(tmp.path().join("etc/calico"))?.count();
        let listing: Vec<_> = std::fs::read_dir(tmp.path().join("etc/calico"))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(
            names, 2,
            "only the file and its backup remain: {listing:?} at {fail_at}"
        );
        if outcome.is_ok() {
            assert!(fail_at >= 3, "only {fail_at} steps were interrupted");
            break;
        }
    }
    Ok(())
}
