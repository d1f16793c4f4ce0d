//! Issue 22, part 3: `calseg-server backup` of a running fleet and `restore` on a machine whose
//! state is gone, with the real server, real etcd and a real agent in a sandbox, for the
//! embedded store and for the etcd store (a replica). The agent goes on without enrolling again
//! (a cycle converges, a renewal is signed), and the store after the restore equals the one
//! backed up record by record: issued serials, token uses, the audit log. Refusals end to end:
//! another fleet's pin, a flipped byte, a cut file, a wrong decryption key, an encrypted backup
//! without a key, a target that holds anything; none writes a byte.

use calseg_control::backup::{self, VerifiedBackup, age::Identity};
use calseg_tests::agent_host::{AgentHost, AgentWorld, describe, standin_policy};
use calseg_tests::etcd::EtcdCluster;
use calseg_tests::server::ServerProcess;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

const NODE: &str = "backup-1";
const HA_NODE: &str = "backup-ha-1";
/// The etcd store's prefix (the default).
const PREFIX: &str = "/calseg/";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs the server's CLI; (exit code, stderr).
fn run(server: &ServerProcess, args: &[&str]) -> (i32, String) {
    let out = server.cli(args).expect("run calseg-server");
    (out.status.code().unwrap_or(-1), describe(&out))
}

/// The fleet CA rotation `ca status` shows (one must be under way).
fn fleet_rotation(server: &ServerProcess) -> calseg_api::ca::FleetRotationStatus {
    let out = server
        .cli(&["ca", "status", "-o", "json"])
        .expect("ca status");
    let status: calseg_api::ca::CaStatus =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", describe(&out)));
    status.fleet_rotation.expect("a fleet CA rotation")
}

fn path_arg(path: &Path) -> String {
    path.display().to_string()
}

/// The backup at `path`, checked as restore checks it.
fn open_backup(path: &Path, pin: &str, identity: Option<&Identity>) -> VerifiedBackup {
    let mut bytes = std::fs::read(path).expect("read the backup");
    if let Some(identity) = identity {
        let key = Identity::parse_file(&identity.encode(), Path::new("key")).unwrap();
        bytes = backup::age::decrypt(&bytes, &key).expect("decrypt");
    }
    backup::open(&bytes, pin, VERSION, OffsetDateTime::now_utc()).expect("a valid backup")
}

/// The audit log through the running server, each entry as JSON.
fn audit_lines(server: &ServerProcess) -> Vec<serde_json::Value> {
    let text = server.cli_ok(&["audit", "-o", "json"]).expect("audit");
    serde_json::from_str(&text).expect("audit JSON")
}

/// Every entry under `dir`, or none when it is missing.
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_22_a_restored_server_serves_its_fleet_without_enrolling_again() {
    let AgentWorld {
        etcd,
        server,
        agent,
    } = AgentWorld::start(NODE, |endpoint| {
        standin_policy(endpoint, &format!("names = [\"{NODE}\"]"))
    })
    .await
    .expect("etcd, server and sandbox");
    round_trip(&etcd, server, &agent, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_22_an_etcd_store_is_backed_up_through_a_replica_and_restored_into_an_empty_prefix() {
    let etcd = EtcdCluster::start().await.expect("etcd");
    let policy = standin_policy(&etcd.endpoint(0), &format!("names = [\"{HA_NODE}\"]"));
    let mut replicas = ServerProcess::start_replicas(&etcd, &policy, "", &[None], "3s")
        .await
        .expect("a replica on the etcd store");
    let server = replicas.remove(0);
    server
        .cli_ok(&["datastore", "init"])
        .expect("datastore init");
    server.wait_rbac_applied().await.expect("RBAC applied");
    let agent = AgentHost::boot(HA_NODE, &server).await.expect("sandbox");
    round_trip(&etcd, server, &agent, true).await;
}

/// How many keys etcd holds under the store's prefix.
async fn keys_under_prefix(etcd: &EtcdCluster) -> i64 {
    let mut client = etcd.root_client().await.expect("etcd client");
    let options = etcd_client::GetOptions::new()
        .with_prefix()
        .with_count_only();
    client
        .get(PREFIX, Some(options))
        .await
        .expect("count")
        .count()
}

/// Enroll, back up while the server runs, destroy its state (with `etcd_store`, the keys under
/// the prefix too), check the refusals, restore, and show the fleet going on.
async fn round_trip(
    etcd: &EtcdCluster,
    mut server: ServerProcess,
    agent: &AgentHost,
    etcd_store: bool,
) {
    let pin = server.fleet_ca_hash().to_owned();
    agent.enroll(&server).expect("enroll");
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 2, "first cycle installs: {out}");
    // A fleet CA rotation under way: its files are in the backup, and the restored server goes
    // on with it.
    server
        .cli_ok(&["ca", "rotate", "fleet", "--begin"])
        .expect("begin a fleet CA rotation");
    let rotating = fleet_rotation(&server);
    // A glob token with a use left, which must stay usable exactly as often after the restore.
    server
        .cli_ok(&["token", "create", "--match", "spare-*", "--uses", "3"])
        .expect("token");
    let tokens_before = server.cli_ok(&["token", "list", "--json"]).unwrap();
    let audit_before = audit_lines(&server);

    // Every regular file of the CA directory is kept (e.g. a rotation's next CA); a symbolic
    // link planted there is left out, and said.
    let ca_dir = server.state_dir().join("ca");
    std::fs::write(ca_dir.join("next-fleet.pem"), "a rotation's next CA\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", ca_dir.join("planted.pem")).unwrap();

    // Backups of the running server: plain, and encrypted to an age key.
    let work = tempfile::tempdir().unwrap();
    let plain = work.path().join("plain.backup");
    let (code, said) = run(&server, &["backup", &path_arg(&plain)]);
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("left out") && said.contains("planted.pem"),
        "{said}"
    );
    assert!(said.contains("from the running server"), "{said}");
    assert!(said.contains("not encrypted"), "{said}");
    let mode = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup is 0600");
    // Reading the store for a backup is audited, with who read it.
    let audited = audit_lines(&server);
    let entry = audited.last().expect("an audit entry");
    assert_eq!(entry["action"], "backup", "{entry:#}");
    assert!(
        entry["actor"]
            .as_str()
            .unwrap_or_default()
            .starts_with("admin"),
        "{entry:#}"
    );
    let (code, said) = run(&server, &["backup", &path_arg(&plain)]);
    assert_eq!(code, 1, "an existing file is kept: {said}");
    assert!(said.contains("--force"), "{said}");

    let identity = Identity::generate().unwrap();
    let key_file = work.path().join("key.txt");
    std::fs::write(&key_file, format!("{}\n", identity.encode())).unwrap();
    let config = server.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{text}\n[backup]\nrecipient = \"{}\"\n",
            identity.recipient().encode()
        ),
    )
    .unwrap();
    let sealed = work.path().join("sealed.backup");
    let (code, said) = run(&server, &["backup", &path_arg(&sealed)]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("encrypted to age1"), "{said}");
    assert!(backup::age::is_age(&std::fs::read(&sealed).unwrap()));
    let backed_up = open_backup(&sealed, &pin, Some(&identity));
    // The same state, but for the audit entry the first backup left (and the second read).
    let mut first = open_backup(&plain, &pin, None).contents;
    let mut second = backed_up.contents.clone();
    let read_for_backup = second.store.audit.pop().expect("an audit entry");
    assert_eq!(
        read_for_backup.action,
        calseg_server::store::AuditAction::Backup
    );
    first.store.audit.retain(|e| e.seq < read_for_backup.seq);
    assert_eq!(first, second);
    let store = &backed_up.contents.store;
    assert!(
        store.nodes.iter().any(|n| n.name == agent.node),
        "the node is in it: {:?}",
        store.nodes.iter().map(|n| &n.name).collect::<Vec<_>>()
    );
    assert!(!store.issued.is_empty() && !store.audit.is_empty());
    assert!(
        backed_up
            .contents
            .ca_files
            .iter()
            .any(|f| f.name == "fleet-key.pem")
    );
    let names: Vec<&str> = backed_up
        .contents
        .ca_files
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert!(names.contains(&"next-fleet.pem"), "{names:?}");
    assert!(names.contains(&"fleet.next-key.pem"), "{names:?}");
    assert!(!names.contains(&"planted.pem"), "{names:?}");

    // The server's machine dies: stop it and destroy its state (store, CAs, TLS files).
    server.stop();
    let state_dir = server.state_dir();
    std::fs::remove_dir_all(&state_dir).unwrap();
    if etcd_store {
        let mut client = etcd.root_client().await.expect("etcd client");
        let options = etcd_client::DeleteOptions::new().with_prefix();
        client
            .delete(PREFIX, Some(options))
            .await
            .expect("delete the store");
        assert_eq!(keys_under_prefix(etcd).await, 0);
    }

    // Refusals, each leaving the target untouched.
    let other_pin = format!("sha256:{}", "0".repeat(64));
    let (code, said) = run(
        &server,
        &["restore", &path_arg(&plain), "--ca-hash", &other_pin],
    );
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("not the pinned"), "{said}");
    let mut bytes = std::fs::read(&plain).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let tampered = work.path().join("tampered.backup");
    std::fs::write(&tampered, &bytes).unwrap();
    let (code, said) = run(
        &server,
        &["restore", &path_arg(&tampered), "--ca-hash", &pin],
    );
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("signature does not verify"), "{said}");
    let cut = work.path().join("cut.backup");
    std::fs::write(&cut, &std::fs::read(&plain).unwrap()[..middle]).unwrap();
    let (code, said) = run(&server, &["restore", &path_arg(&cut), "--ca-hash", &pin]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("truncated"), "{said}");
    let (code, said) = run(&server, &["restore", &path_arg(&sealed), "--ca-hash", &pin]);
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("--identity"), "{said}");
    let wrong_key = work.path().join("wrong.txt");
    std::fs::write(&wrong_key, Identity::generate().unwrap().encode()).unwrap();
    let (code, said) = run(
        &server,
        &[
            "restore",
            &path_arg(&sealed),
            "--ca-hash",
            &pin,
            "--identity",
            &path_arg(&wrong_key),
        ],
    );
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("none of the given keys"), "{said}");
    assert!(
        !state_dir.exists(),
        "a refused restore wrote {:?}",
        entries(&state_dir)
    );
    if etcd_store {
        assert_eq!(
            keys_under_prefix(etcd).await,
            0,
            "a refused restore wrote to etcd"
        );
    }

    // The restore, into the fresh (empty) state directory.
    let restore_args = [
        "restore",
        &path_arg(&sealed),
        "--ca-hash",
        &pin,
        "--identity",
        &path_arg(&key_file),
    ];
    let (code, said) = run(&server, &restore_args);
    assert_eq!(code, 0, "{said}");
    let key_mode = std::fs::metadata(state_dir.join("ca/fleet-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600, "CA keys are 0600");
    let cert_mode = std::fs::metadata(state_dir.join("ca/fleet.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(cert_mode & 0o777, 0o644);
    assert_eq!(
        std::fs::read_to_string(state_dir.join("ca/next-fleet.pem")).unwrap(),
        "a rotation's next CA\n"
    );
    assert!(!state_dir.join("ca/planted.pem").exists());
    // Again: the target holds the restored state now, and says what.
    let (code, said) = run(&server, &restore_args);
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("empty target")
            && said.contains("fleet-key.pem")
            && said.contains(if etcd_store {
                "etcd under /calseg/ holds 1 nodes"
            } else {
                "state.redb exists"
            }),
        "{said}"
    );

    // Record by record: a backup of the restored store (server stopped: read directly) holds
    // what the first one held: nodes, tokens and their uses, issued serials, the audit log.
    let again = work.path().join("again.backup");
    let (code, said) = run(&server, &["backup", &path_arg(&again)]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("read directly"), "{said}");
    let restored = open_backup(&again, &pin, Some(&identity));
    assert_eq!(restored.contents, backed_up.contents);

    // The server starts on the restored state; the agent goes on with its enrollment.
    server.restart().await.expect("serve the restored state");
    assert_eq!(
        server.cli_ok(&["token", "list", "--json"]).unwrap(),
        tokens_before
    );
    let audit_after = audit_lines(&server);
    assert!(
        audit_after.starts_with(&audit_before),
        "the audit log goes on from where it was:\nbefore:\n{audit_before:#?}\nafter:\n{audit_after:#?}"
    );
    assert_eq!(fleet_rotation(&server), rotating, "the rotation goes on");
    let (code, out) = agent.once().expect("once");
    assert_eq!(
        code, 0,
        "a cycle against the restored server, nothing to change: {out}"
    );
    // ... and the agent's fleet certificate came from the restored new CA right after it.
    let moved = fleet_rotation(&server);
    assert!(moved.pending_nodes.is_empty(), "{moved:#?}");
    let renewed = agent.agent("renew --component calico-node").expect("renew");
    assert_eq!(renewed.status.code(), Some(2), "{}", describe(&renewed));
    // The renewal's serial is new, and every serial issued before the restore is still known.
    let after = work.path().join("after.backup");
    let (code, said) = run(&server, &["backup", &path_arg(&after)]);
    assert_eq!(code, 0, "{said}");
    let issued_after = open_backup(&after, &pin, Some(&identity))
        .contents
        .store
        .issued;
    for old in &store.issued {
        assert!(issued_after.contains(old), "serial {} kept", old.serial);
    }
    assert!(
        issued_after.len() > store.issued.len(),
        "the renewal was recorded"
    );
    let (code, out) = agent.once().expect("once");
    assert_eq!(code, 0, "converged after the renewal: {out}");
    let audit_final = audit_lines(&server);
    assert!(
        audit_final.starts_with(&audit_before) && audit_final.len() > audit_before.len(),
        "the renewal was audited after the restored entries:\n{audit_final:#?}"
    );
}
