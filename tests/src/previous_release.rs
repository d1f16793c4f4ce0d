//! The previous release of calseg, built from source for the mixed-version tests
//! (docs/compatibility.md): `calseg-server` and `calseg-agent` of the commit
//! [`PREVIOUS_RELEASE`], exported with `git archive` into `target/compat/<commit>/src` and built
//! there with a target directory of their own (`target/compat/<commit>/target`). A marker file
//! written after a successful build makes later runs reuse the binaries; an exclusive lock on
//! `target/compat/<commit>.lock` keeps two tests from building at once (the second waits, then
//! finds the marker).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The previous release: the commit whose server and agent the current ones must work with.
/// calseg has no release tags yet; each release moves this pin to the commit it replaces.
pub const PREVIOUS_RELEASE: &str = "145d913498d49a1be7eff255c8b141414e645c84";

/// The cargo profile the previous release is built with, and the directory it builds into.
/// The debug profile, as the tests run this release's binaries: on the project's 2-core machine
/// a cold build took 2.5 to 4.3 min in it and 14 min in release, and the tests took 14 s either
/// way.
const PROFILE: &str = "dev";
const PROFILE_DIR: &str = "debug";

/// The previous release's binaries.
#[derive(Debug, Clone)]
pub struct PreviousRelease {
    pub server: PathBuf,
    pub agent: PathBuf,
}

/// The binaries of [`PREVIOUS_RELEASE`], built first if no earlier run built them (this takes
/// minutes; the build log is `target/compat/<commit>/build.log`).
pub async fn binaries() -> Result<PreviousRelease> {
    tokio::task::spawn_blocking(|| binaries_under(&crate::bins::target_dir()))
        .await
        .context("the build of the previous release panicked")?
}

/// [`binaries`] for cargo target directory `target` (blocking): what the
/// `calseg-previous-release` program runs, so scripts/test.sh builds the previous release
/// before the tests rather than beside them.
pub fn binaries_under(target: &Path) -> Result<PreviousRelease> {
    binaries_in(target, PREVIOUS_RELEASE)
}

/// The workspace checkout the tests were built from (the repository holding the commit).
fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn binaries_in(target: &Path, commit: &str) -> Result<PreviousRelease> {
    let compat = target.join("compat");
    let root = compat.join(commit);
    let built = root.join("target").join(PROFILE_DIR);
    let release = PreviousRelease {
        server: built.join("calseg-server"),
        agent: built.join("calseg-agent"),
    };
    let marker = root.join("built");
    std::fs::create_dir_all(&compat).with_context(|| format!("create {}", compat.display()))?;
    let lock_path = compat.join(format!("{commit}.lock"));
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("create the lock file {}", lock_path.display()))?;
    // flock(2): waits while another test (or test process) builds.
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("lock {}", lock_path.display()))?;
    if marker.is_file() && release.server.is_file() && release.agent.is_file() {
        return Ok(release);
    }
    let started = Instant::now();
    export(&repository(), commit, &root.join("src"))?;
    build(&root)?;
    for binary in [&release.server, &release.agent] {
        if !binary.is_file() {
            bail!(
                "the build of calseg {commit} succeeded but made no {} (see {})",
                binary.display(),
                root.join("build.log").display()
            );
        }
    }
    std::fs::write(
        &marker,
        format!(
            "calseg {commit} built ({PROFILE}) in {} s\n",
            started.elapsed().as_secs()
        ),
    )
    .with_context(|| format!("write {}", marker.display()))?;
    // The lock is released when `_lock` drops.
    Ok(release)
}

/// Writes the files of `commit` into a fresh `dest` (`git archive | tar -x`).
fn export(repository: &Path, commit: &str, dest: &Path) -> Result<()> {
    let object = format!("{commit}^{{commit}}");
    let check = Command::new("git")
        .arg("-C")
        .arg(repository)
        .args(["rev-parse", "--verify", "--quiet", &object])
        .output()
        .context(
            "prerequisite missing: `git` is needed to build the previous calseg release for the \
             mixed-version tests; install it (apt-get install git)",
        )?;
    if !check.status.success() {
        bail!(
            "prerequisite missing: the previous release, commit {commit}, is not in the git \
             repository at {}. The mixed-version tests build it from that commit: run them in a \
             git clone of calseg with its history (not a source archive, not `--depth 1`; \
             `git fetch --unshallow` fixes a shallow clone). {}",
            repository.display(),
            String::from_utf8_lossy(&check.stderr).trim()
        );
    }
    if dest.exists() {
        // A run that died halfway: start over.
        std::fs::remove_dir_all(dest).with_context(|| format!("remove {}", dest.display()))?;
    }
    std::fs::create_dir_all(dest).with_context(|| format!("create {}", dest.display()))?;
    let mut archive = Command::new("git")
        .arg("-C")
        .arg(repository)
        .args(["archive", "--format=tar", commit])
        .stdout(Stdio::piped())
        .spawn()
        .context("run git archive")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dest)
        .stdin(archive.stdout.take().context("git archive's output")?)
        .status()
        .context("run tar (apt-get install tar)")?;
    let archived = archive.wait().context("wait for git archive")?;
    if !archived.success() || !tar.success() {
        bail!(
            "git archive {commit} | tar -x -C {} failed ({archived}, tar {tar})",
            dest.display()
        );
    }
    Ok(())
}

/// `cargo build --profile dev --bins --locked -p calseg-server -p calseg-agent` in `root/src`, into
/// `root/target`, logging to `root/build.log`.
fn build(root: &Path) -> Result<()> {
    let log_path = root.join("build.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("create {}", log_path.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(root.join("src"))
        .args(["build", "--profile", PROFILE, "--bins", "--locked"])
        .args(["-p", "calseg-server", "-p", "calseg-agent", "--target-dir"])
        .arg(root.join("target"))
        // The outer build's target directory is not this one's.
        .env_remove("CARGO_TARGET_DIR")
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .with_context(|| format!("run {}", Path::new(&cargo).display()))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        bail!(
            "building the previous calseg release in {} failed ({status}); the end of {}:\n{}",
            root.join("src").display(),
            log_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_missing_from_the_repository_fails_and_says_what_to_do() {
        let target = tempfile::tempdir().unwrap();
        let missing = "0000000000000000000000000000000000000001";
        let error = binaries_in(target.path(), missing).unwrap_err().to_string();
        assert!(
            error.contains(missing) && error.contains("git clone"),
            "{error}"
        );
        assert!(
            !target
                .path()
                .join("compat")
                .join(missing)
                .join("built")
                .exists()
        );
    }
}
