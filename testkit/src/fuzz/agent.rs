//! The bodies of the agent's fuzz targets (issue 10), shared by `fuzz/` (cargo-fuzz) and the
//! corpus regression test in `tests/tests/fuzz_corpus.rs`. Each takes arbitrary bytes and
//! panics only on a bug: every error must come back as a value.
//!
//! Free to change with the fuzz targets.

use calseg_agent::render::{EtcdFiles, cni_conflist, env_file};
use std::path::{Path, PathBuf};

fn settings() -> EtcdFiles {
    EtcdFiles {
        endpoints: vec![
            "https://10.0.0.1:2379".into(),
            "https://10.0.0.2:2379".into(),
        ],
        ca_file: PathBuf::from("/etc/calico/certs/cni-plugin/ca.pem"),
        cert_file: PathBuf::from("/etc/calico/certs/cni-plugin/cert.pem"),
        key_file: PathBuf::from("/etc/calico/certs/cni-plugin/key.pem"),
    }
}

/// An existing CNI config (conflist or .conf) patched with the etcd fields. Rendering is
/// idempotent, as `render` promises: patching the output again gives the same bytes. The same
/// text as an existing environment file must render idempotently too.
pub fn cni_conflist_patch(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let settings = settings();
    if let Ok(patched) = cni_conflist(text, &settings) {
        match cni_conflist(&patched, &settings) {
            Ok(again) => assert_eq!(again, patched, "re-rendering a conflist changed it"),
            Err(error) => panic!("a rendered conflist does not render again: {error}"),
        }
    }
    let env = env_file(Some(text), &settings);
    let again = env_file(Some(&env.text), &settings);
    assert_eq!(again.text, env.text, "re-rendering an env file changed it");
}

/// agent.toml text: parsed and validated; errors are formatted with their line and column.
pub fn agent_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = calseg_agent::config::Settings::parse(Path::new("agent.toml"), text) {
        let _ = error.to_string();
    }
    let _ = calseg_agent::config::parse_duration(text);
}
