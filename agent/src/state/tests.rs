use super::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn fleet_key_is_created_0600_and_read_back() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path().join("agent"));
    assert!(state.fleet()?.is_none());
    let fleet = FleetCredentials {
        key: PrivateKeyPem::new("-----BEGIN PRIVATE KEY-----\nx\n".into()),
        cert_pem: "cert".into(),
        ca_pem: "ca".into(),
    };
    state.save_fleet(&fleet)?;
    let mode = |name: &str| -> std::io::Result<u32> {
        Ok(std::fs::metadata(state.path(name))?.permissions().mode() & 0o7777)
    };
    assert_eq!(mode(StateDir::FLEET_KEY)?, 0o600);
    assert_eq!(
        std::fs::metadata(&state.dir)?.permissions().mode() & 0o7777,
        0o700
    );
    let back = state.fleet()?.map(|f| f.key);
    assert_eq!(back, Some(fleet.key));
    // Replacing keeps the mode.
    state.write(StateDir::FLEET_KEY, b"other", 0o600)?;
    assert_eq!(mode(StateDir::FLEET_KEY)?, 0o600);
    Ok(())
}

#[test]
fn corrupt_records_name_the_file() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path());
    state.write(StateDir::INSTALLED, b"{not json", 0o600)?;
    let err = state
        .installed()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("installed.json") && err.contains("corrupt"),
        "{err}"
    );
    Ok(())
}

#[test]
fn servers_are_saved_one_per_line_and_an_old_single_url_reads_as_a_list()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path());
    assert!(state.servers()?.is_empty());
    assert_eq!(state.current_server()?, None);
    state.write(StateDir::SERVER_URL, b"https://old:8443\n", 0o644)?;
    assert_eq!(state.servers()?, ["https://old:8443"]);
    let urls = ["https://a:8443".to_owned(), "https://b:8443".to_owned()];
    state.save_servers(&urls)?;
    assert_eq!(state.servers()?, urls);
    state.save_current_server("https://b:8443")?;
    assert_eq!(state.current_server()?.as_deref(), Some("https://b:8443"));
    Ok(())
}
