//! The systemd `EnvironmentFile` of a Calico service (`/etc/calico/calico.env`): sets the five
//! libcalico variables and keeps every other line of the operator's file as it was.

use super::EtcdFiles;

/// A rendered env file and what the operator should know about the rest of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFile {
    pub text: String,
    /// Settings elsewhere in the file that defeat or shadow the managed ones, one sentence each
    /// with its line number. Values are never included (they may be passwords).
    pub warnings: Vec<String>,
}

/// Variables calseg owns, in the order they are appended when missing.
const MANAGED: [&str; 5] = [
    "DATASTORE_TYPE",
    "ETCD_ENDPOINTS",
    "ETCD_CA_CERT_FILE",
    "ETCD_CERT_FILE",
    "ETCD_KEY_FILE",
];

/// Renders the env file: each managed variable replaces its first assignment in place (later
/// duplicates are dropped) or is appended; comments, other variables and their order are kept.
/// Call [`EtcdFiles::validate`] first; values are quoted for systemd where needed.
pub fn env_file(existing: Option<&str>, settings: &EtcdFiles) -> EnvFile {
    let values = [
        "etcdv3".to_owned(),
        settings.endpoints_joined(),
        settings.ca_file.to_string_lossy().into_owned(),
        settings.cert_file.to_string_lossy().into_owned(),
        settings.key_file.to_string_lossy().into_owned(),
    ];
    let mut written = [false; MANAGED.len()];
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    // Whether the previous line ended in a backslash, making this one part of its value.
    let mut continues = false;
    let mut dropping = false;
    for (index, line) in existing.unwrap_or("").lines().enumerate() {
        // systemd reads CR as a line break too; `lines()` drops only one, so a line ending in
        // several lost one per render (found by the `cni_conflist` fuzz target).
        let line = line.trim_end_matches('\r');
        let was_continuation = continues;
        continues = ends_in_escape(line);
        if was_continuation {
            if !dropping {
                lines.push(line.to_owned());
            }
            continue;
        }
        dropping = false;
        let number = index + 1;
        let Some(key) = key_of(line) else {
            lines.push(line.to_owned());
            continue;
        };
        match MANAGED.iter().position(|m| *m == key) {
            Some(i) if written[i] => {
                warnings.push(format!("line {number}: duplicate {key} removed"));
                dropping = true;
            }
            Some(i) => {
                written[i] = true;
                lines.push(format!("{key}={}", quote(&values[i])));
                dropping = true;
            }
            None => {
                warnings.extend(warning_for(key, number));
                lines.push(line.to_owned());
            }
        }
    }
    // A last line continued by a backslash would swallow the first appended variable (systemd
    // joins them, and so does the next render, which then appends it again): end it with an
    // empty line. Found by the `cni_conflist` fuzz target (fuzz/regressions/cni_conflist/).
    if continues && !dropping && written.contains(&false) {
        lines.push(String::new());
    }
    for (i, key) in MANAGED.iter().enumerate() {
        if !written[i] {
            lines.push(format!("{key}={}", quote(&values[i])));
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    EnvFile { text, warnings }
}

/// The variable a line assigns, if it is an assignment (not a comment or blank).
fn key_of(line: &str) -> Option<&str> {
    let line = line.trim_start();
    if line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    let (key, _) = line.split_once('=')?;
    let key = key.trim_end();
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    (first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(key)
}

/// Whether a line ends in an unescaped backslash (systemd joins it with the next line).
fn ends_in_escape(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// A value as systemd reads it back: bare when plainly safe, else double-quoted.
fn quote(value: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:,@%+=-[]".contains(c);
    if !value.is_empty() && value.chars().all(safe) {
        return value.to_owned();
    }
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

/// Why another variable in the file undermines the managed ones, if it does.
fn warning_for(key: &str, number: usize) -> Option<String> {
    let why = match key {
        "ETCD_USERNAME" | "ETCD_PASSWORD" | "CALICO_ETCD_USERNAME" | "CALICO_ETCD_PASSWORD" => {
            "etcd authenticates by username/password instead of the certificate's CN when both \
             are set, silently bypassing the per-node identity; remove it"
        }
        "ETCD_DISCOVERY_SRV" | "CALICO_ETCD_DISCOVERY_SRV" => {
            "Calico refuses it combined with ETCD_ENDPOINTS; remove it"
        }
        "CALICO_DATASTORE_TYPE"
        | "CALICO_ETCD_ENDPOINTS"
        | "CALICO_ETCD_CA_CERT_FILE"
        | "CALICO_ETCD_CERT_FILE"
        | "CALICO_ETCD_KEY_FILE" => {
            "Calico also reads the CALICO_-prefixed spelling and may prefer it over the \
             managed unprefixed one; remove it"
        }
        _ if key.starts_with("FELIX_DATASTORETYPE") || key.starts_with("FELIX_ETCD") => {
            "Felix uses FELIX_ datastore settings over ETCD_*, so it would keep the old \
             identity; remove it"
        }
        _ => return None,
    };
    Some(format!("line {number}: {key} is set: {why}"))
}

#[cfg(test)]
mod tests;
