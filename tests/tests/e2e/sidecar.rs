//! Issue 21, points 2 and 4: `calseg-agent sidecar`, the files-only side car for Calico's
//! hosted Kubernetes manifest, run as a plain process (no systemd, no sandbox) against the
//! real server and a real etcd, with temp directories as `/calico-secrets` and as the state
//! directory (the hostPath). Calico's names and modes, the identity in etcd (its node's keys,
//! not another's), the init form's exit status before and after approval, no second
//! enrollment after a restart, renewals that a polling reader never sees half done, and the
//! bad inputs (no node-name variable, a read-only output directory) that write nothing. The
//! signal to calico-node under a restart lease is in `sidecar_signal.rs`.

use calseg_tests::bins;
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::pki::KeyedCert;
use calseg_tests::server::ServerProcess;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

fn policy(endpoint: &str) -> String {
    policy_with(endpoint, "")
}

/// The policy with `extra` appended (a `[rollout]` table).
pub(crate) fn policy_with(endpoint: &str, extra: &str) -> String {
    format!(
        r#"calico_version = "3.29"
[etcd]
endpoints = ["{endpoint}"]
[components.calico-node]
grants = [ {{ prefix = "/calico/resources/v3/projectcalico.org/", access = "read" }} ]
node_grants = [ {{ prefix = "/calico/felix/v1/host/{{node}}/", access = "readwrite" }} ]
restart = ["calico-node.service"]
env_file = "/etc/calico/calico-node.env"
[components.cni-plugin]
grants = "cni-plugin"
[[hosts]]
names = ["sc-1", "sc-2"]
components = ["calico-node", "cni-plugin"]
{extra}"#
    )
}

/// A pod's two volumes: the emptyDir shared with calico-node and the hostPath state dir.
pub(crate) struct Pod {
    _tmp: tempfile::TempDir,
    pub out: PathBuf,
    pub state: PathBuf,
    pub token: PathBuf,
}

impl Pod {
    pub fn new() -> Pod {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("calico-secrets");
        std::fs::create_dir(&out).expect("emptyDir");
        Pod {
            out,
            state: tmp.path().join("state"),
            token: tmp.path().join("token"),
            _tmp: tmp,
        }
    }

    /// `calseg-agent sidecar ARGS` as node `node` (`None`: the variable unset).
    pub fn sidecar(&self, server: &ServerProcess, node: Option<&str>, args: &[&str]) -> Output {
        self.command(server, Path::new("/dev/null"), node, args)
            .output()
            .expect("run calseg-agent sidecar")
    }

    /// The `calseg-agent --config CONFIG sidecar ...` command, not started.
    pub fn command(
        &self,
        server: &ServerProcess,
        config: &Path,
        node: Option<&str>,
        args: &[&str],
    ) -> Command {
        let mut cmd = Command::new(bins::path("calseg-agent"));
        cmd.arg("--config")
            .arg(config)
            .args(["sidecar", "--output-dir"])
            .arg(&self.out)
            .arg("--state-dir")
            .arg(&self.state)
            .args([
                "--server",
                &server.url(),
                "--ca-hash",
                server.fleet_ca_hash(),
            ])
            .args(args)
            .env_remove("CALSEG_NODE_NAME");
        if let Some(node) = node {
            cmd.env("CALSEG_NODE_NAME", node);
        }
        cmd
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.out.join(name)).unwrap_or_default()
    }

    fn identity(&self) -> KeyedCert {
        KeyedCert {
            cert_pem: self.read("etcd-cert"),
            key_pem: self.read("etcd-key"),
        }
    }

    /// Every entry of both volumes, relative names.
    fn entries(&self) -> Vec<String> {
        let mut names = Vec::new();
        for dir in [&self.out, &self.state] {
            if let Ok(read) = std::fs::read_dir(dir) {
                names.extend(read.map(|e| e.unwrap().path().display().to_string()));
            }
        }
        names
    }
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The SubjectPublicKeyInfo of a certificate and of a private key, to tell whether they match.
fn spki_of_cert(pem: &str) -> Option<Vec<u8>> {
    calseg_agent::keys::cert_info(pem)
        .ok()
        .map(|i| i.public_key_der)
}

fn spki_of_key(pem: &str) -> Option<Vec<u8>> {
    let key = rcgen::KeyPair::from_pem(pem).ok()?;
    Some(rcgen::PublicKeyData::subject_public_key_info(&key))
}

pub(crate) fn serial(pod: &Pod) -> String {
    calseg_agent::keys::cert_info(&pod.read("etcd-cert"))
        .expect("etcd-cert is a certificate")
        .serial
}

async fn setup() -> (EtcdCluster, ServerProcess) {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let server = ServerProcess::start(&etcd, &policy(&etcd.endpoint(0)), "")
        .await
        .expect("server");
    (etcd, server)
}

#[tokio::test]
async fn issue_21_sidecar_installs_calicos_files_for_its_node_only_and_renews_atomically() {
    let (etcd, server) = setup().await;
    let pod = Pod::new();
    let token = server.token_for("sc-1", "1h").expect("token");
    std::fs::write(&pod.token, format!("{token}\n")).expect("token Secret");
    let token_file = pod.token.to_str().unwrap();

    let init = pod.sidecar(
        &server,
        Some("sc-1"),
        &["--init", "--token-file", token_file],
    );
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));

    // Calico's names: links into one generation, with Calico's modes.
    for (name, mode) in [
        ("etcd-ca", 0o644),
        ("etcd-cert", 0o644),
        ("etcd-key", 0o600),
    ] {
        let path = pod.out.join(name);
        let link = std::fs::read_link(&path).expect("a link");
        assert_eq!(link, Path::new(".calseg/current").join(name));
        let meta = std::fs::metadata(&path).expect("target");
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{name}");
    }
    let mut names: Vec<String> = std::fs::read_dir(&pod.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".calseg", "etcd-ca", "etcd-cert", "etcd-key"]);
    let info = calseg_agent::keys::cert_info(&pod.read("etcd-cert")).unwrap();
    assert_eq!(info.common_name, "calico-node.sc-1");
    // Only calico-node, only in the output directory: the manifest's paths (/etc/calico/...,
    // the cni-plugin identity) land nowhere, not even under the install root (its parent).
    let mut beside: Vec<String> = std::fs::read_dir(pod.out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    beside.sort();
    assert_eq!(beside, ["calico-secrets", "state", "token"]);

    // The identity works in etcd for its node's keys and is denied another node's.
    let mut client = etcd.client_as(&pod.identity()).await.expect("connect");
    client
        .put("/calico/felix/v1/host/sc-1/status", "up", None)
        .await
        .expect("own node's key");
    let denied = client
        .put("/calico/felix/v1/host/sc-2/status", "up", None)
        .await;
    let error = format!("{:?}", denied.expect_err("another node's key"));
    assert!(error.contains("permission denied"), "{error}");

    // A restarted side car (same state dir, token already used) does not enroll again.
    let fleet = std::fs::read(pod.state.join("fleet.pem")).expect("fleet identity");
    let again = pod.sidecar(
        &server,
        Some("sc-1"),
        &["--init", "--token-file", token_file],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(!String::from_utf8_lossy(&again.stderr).contains("enrolled as"));
    assert_eq!(std::fs::read(pod.state.join("fleet.pem")).unwrap(), fleet);

    // Renewals while a reader polls the files as Calico would: never a missing or partial
    // file, and never a key that does not match its certificate. (A flip between the reader's
    // two opens pairs two generations; the installer documents that residual. The reader
    // reads the certificate again and only judges pairs with no flip in between.)
    let stop = Arc::new(AtomicBool::new(false));
    let judged = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, judged, out) = (stop.clone(), judged.clone(), pod.out.clone());
        std::thread::spawn(move || -> Result<(), String> {
            while !stop.load(Ordering::SeqCst) {
                let read = |n: &str| std::fs::read_to_string(out.join(n));
                let (cert, key, cert_again) =
                    (read("etcd-cert"), read("etcd-key"), read("etcd-cert"));
                let (Ok(cert), Ok(key), Ok(cert_again)) = (cert, key, cert_again) else {
                    return Err("a file was missing during a renewal".into());
                };
                let cert_key = spki_of_cert(&cert).ok_or("a partial etcd-cert")?;
                let key_key = spki_of_key(&key).ok_or("a partial etcd-key")?;
                if cert != cert_again {
                    continue;
                }
                if cert_key != key_key {
                    return Err("etcd-key does not match etcd-cert".into());
                }
                judged.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
    };
    let mut serials = vec![serial(&pod)];
    for _ in 0..3 {
        let renew = pod.sidecar(&server, Some("sc-1"), &["--init", "--renew"]);
        assert_eq!(renew.status.code(), Some(0), "{}", text(&renew));
        serials.push(serial(&pod));
    }
    stop.store(true, Ordering::SeqCst);
    reader.join().expect("reader").expect("what the reader saw");
    assert!(
        judged.load(Ordering::SeqCst) > 10,
        "the reader judged too few pairs"
    );
    let mut distinct = serials.clone();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        4,
        "each renewal is a new certificate: {serials:?}"
    );
    // The renewed identity is the one in the files, and etcd takes it.
    let mut client = etcd
        .client_as(&pod.identity())
        .await
        .expect("connect renewed");
    client
        .put("/calico/felix/v1/host/sc-1/status", "up", None)
        .await
        .expect("renewed identity");
}

#[tokio::test]
async fn issue_21_sidecar_init_fails_while_pending_approval_and_succeeds_after() {
    let (_etcd, server) = setup().await;
    let pod = Pod::new();
    let pending = pod.sidecar(&server, Some("sc-2"), &["--init", "--no-wait"]);
    let said = text(&pending);
    assert_eq!(pending.status.code(), Some(3), "{said}");
    assert!(
        std::fs::read_dir(&pod.out).unwrap().next().is_none(),
        "{said}"
    );
    let fingerprint = said
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .expect("the key's fingerprint")
        .trim_end_matches(':')
        .to_owned();
    server
        .cli_ok(&["nodes", "approve", "sc-2", "--fingerprint", &fingerprint])
        .expect("approve");
    let init = pod.sidecar(&server, Some("sc-2"), &["--init", "--no-wait"]);
    assert_eq!(init.status.code(), Some(0), "{}", text(&init));
    let info = calseg_agent::keys::cert_info(&pod.read("etcd-cert")).unwrap();
    assert_eq!(info.common_name, "calico-node.sc-2");
}

/// Unmounts a read-only tmpfs at drop.
struct ReadOnly(PathBuf);

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[tokio::test]
async fn issue_21_sidecar_bad_inputs_name_the_problem_and_write_nothing() {
    let (_etcd, server) = setup().await;
    let pod = Pod::new();
    let token = server.token_for("sc-1", "1h").expect("token");
    std::fs::write(&pod.token, token).expect("token Secret");
    let token_file = pod.token.to_str().unwrap();
    let before = pod.entries();

    for node in [None, Some("")] {
        let out = pod.sidecar(&server, node, &["--init", "--token-file", token_file]);
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("CALSEG_NODE_NAME is "), "{said}");
        assert!(said.contains("fieldPath: spec.nodeName"), "{said}");
        assert_eq!(pod.entries(), before, "{said}");
    }

    // /calico-secrets mounted read-only (a volumeMount with readOnly: true).
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(&pod.out)
        .status()
        .expect("mount");
    assert!(
        mounted.success(),
        "cannot mount a read-only tmpfs (run as root)"
    );
    let _guard = ReadOnly(pod.out.clone());
    let out = pod.sidecar(
        &server,
        Some("sc-1"),
        &["--init", "--token-file", token_file],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("is not writable"), "{said}");
    assert!(said.contains(pod.out.to_str().unwrap()), "{said}");
    assert!(said.contains("nothing was written"), "{said}");
    assert_eq!(pod.entries(), before, "{said}");
    // The token was not spent: the node did not enroll.
    assert!(!pod.state.exists(), "{said}");
}
