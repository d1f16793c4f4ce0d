use super::*;
use crate::state::{CycleRecord, RevokedRecord};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// `promtool check metrics` on `text`; panics with its findings, or with what to install.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is needed to check the textfile ({e}): install Debian's prometheus \
                 package (apt-get install --no-install-recommends prometheus), or run \
                 scripts/prereqs.sh"
            )
        });
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(text.as_bytes()).expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn facts() -> Facts {
    Facts {
        expiries: vec![
            ("calico-node".into(), 1_800_000_000),
            ("fleet".into(), 1_900_000_000),
        ],
        last_cycle: Some((1_796_623_200, Outcome::Unreachable)),
        revoked: false,
    }
}

#[test]
fn the_textfile_has_expiries_the_last_cycle_and_revoked_and_passes_promtool() {
    let text = facts().render();
    for line in [
        "calseg_agent_certificate_expiration_timestamp_seconds{component=\"calico-node\"} 1800000000",
        "calseg_agent_certificate_expiration_timestamp_seconds{component=\"fleet\"} 1900000000",
        "calseg_agent_last_cycle_timestamp_seconds 1796623200",
        "calseg_agent_last_cycle_success 0",
        "calseg_agent_last_cycle_outcome{outcome=\"unreachable\"} 1",
        "calseg_agent_last_cycle_outcome{outcome=\"changed\"} 0",
        "calseg_agent_revoked 0",
        &format!(
            "calseg_agent_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
    }
    assert!(!text.contains("# EOF"), "text format 0.0.4: {text}");
    promtool_check(&text);
    // A component name with a quote stays one well-formed line.
    let odd = Facts {
        expiries: vec![("a\"b".into(), 1)],
        ..Facts::default()
    };
    let text = odd.render();
    assert!(text.contains(r#"{component="a\"b"} 1"#), "{text}");
    promtool_check(&text);
}

#[test]
fn the_textfile_reads_the_state_directory_and_is_replaced_atomically_with_mode_0644() -> TestResult
{
    let tmp = tempfile::tempdir()?;
    let state = StateDir::new(tmp.path().join("state"));
    let out = tmp.path().join("textfile");
    std::fs::create_dir(&out)?;
    // A file left behind by an earlier writer, with the wrong mode: replaced.
    std::fs::write(out.join(FILE_NAME), "stale")?;
    std::fs::set_permissions(out.join(FILE_NAME), std::fs::Permissions::from_mode(0o600))?;
    let at = time::OffsetDateTime::from_unix_timestamp(1_796_623_200)?;
    state.save_last_cycle(&CycleRecord {
        started_at: at,
        finished_at: at,
        outcome: Outcome::Revoked,
        report: None,
        errors: Vec::new(),
    })?;
    state.save_revoked(&RevokedRecord {
        learned_at: at,
        server: "https://a:1".into(),
        message: "revoked".into(),
    })?;
    write(&out, &state)?;
    let path = out.join(FILE_NAME);
    let text = std::fs::read_to_string(&path)?;
    assert!(
        text.lines().any(|l| l == "calseg_agent_revoked 1")
            && text
                .lines()
                .any(|l| l == "calseg_agent_last_cycle_outcome{outcome=\"revoked\"} 1")
            && text
                .lines()
                .any(|l| l == "calseg_agent_last_cycle_timestamp_seconds 1796623200"),
        "{text}"
    );
    assert_eq!(
        std::fs::metadata(&path)?.permissions().mode() & 0o7777,
        0o644
    );
    let names: Vec<_> = std::fs::read_dir(&out)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    assert_eq!(names, [FILE_NAME], "no temp file left");
    promtool_check(&text);
    // A directory that is missing is an error, not created.
    assert!(write(&tmp.path().join("missing"), &state).is_err());
    Ok(())
}
