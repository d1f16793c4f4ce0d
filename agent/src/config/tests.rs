use super::*;

fn parse(text: &str) -> Result<Settings, ConfigError> {
    let at = Locator {
        path: Path::new("/etc/calseg/agent.toml"),
        text,
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| at.error(e.span(), "", e.to_string()))?;
    Settings::from_raw(&at, raw, || Some("host-a".into()))
}

#[test]
fn defaults_fill_an_empty_file() -> Result<(), ConfigError> {
    let settings = parse("")?;
    assert_eq!(settings.node, "host-a");
    assert!(settings.servers.is_empty());
    assert_eq!(settings.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
    assert_eq!(settings.root, PathBuf::from("/"));
    assert_eq!(settings.interval, Duration::from_secs(300));
    assert_eq!(settings.jitter, Duration::from_secs(60));
    assert_eq!(settings.restart_timeout, Duration::from_secs(60));
    assert_eq!(settings.lease_wait, Duration::from_secs(600));
    assert_eq!(settings.key_algorithm, KeyAlgorithm::P256);
    assert!(settings.long_poll);
    Ok(())
}

#[test]
fn long_poll_can_be_turned_off_and_must_be_a_boolean() -> Result<(), ConfigError> {
    assert!(!parse("long_poll = false\n")?.long_poll);
    assert!(parse("long_poll = true\n")?.long_poll);
    let err = parse("long_poll = \"yes\"\n").err().map(|e| e.to_string());
    assert!(err.as_deref().is_some_and(|e| e.contains(":1:")), "{err:?}");
    Ok(())
}

#[test]
fn shipped_example_parses_and_uncommented_it_still_does() -> Result<(), ConfigError> {
    let example = include_str!("../../agent.example.toml");
    assert_eq!(
        parse(example)?,
        parse("")?,
        "the example shows the defaults"
    );
    // Uncomment every option line: the example must stay valid TOML with valid values.
    let uncommented: String = example
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest) if rest.split_once(" = ").is_some() => rest,
            Some(rest) if rest.starts_with('[') && rest.ends_with(']') => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let settings = parse(&uncommented)?;
    assert_eq!(
        settings.servers,
        [
            "https://calseg-1.example.com:8443",
            "https://calseg-2.example.com:8443"
        ]
    );
    assert_eq!(settings.node, "worker-17");
    assert_eq!(
        settings.textfile_dir.as_deref(),
        Some(Path::new("/var/lib/prometheus/node-exporter"))
    );
    Ok(())
}

#[test]
fn errors_carry_file_line_column_and_field() {
    let text = "node = \"n1\"\ninterval = \"5x\"\n";
    let err = parse(text).err();
    let err = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        err.starts_with("/etc/calseg/agent.toml:2:12: interval: \"5x\" has an unknown unit `x`"),
        "{err}"
    );

    let err = parse("\n\nserver = \"http://x\"\n").err();
    assert_eq!(
        err.as_ref().map(|e| (e.line, e.field.as_str())),
        Some((3, "server"))
    );

    let err = parse("key_algorithm = \"rsa\"").err();
    assert_eq!(
        err.as_ref().map(|e| e.field.as_str()),
        Some("key_algorithm")
    );

    let err = parse("root = \"relative/dir\"").err();
    assert_eq!(err.as_ref().map(|e| e.field.as_str()), Some("root"));

    let err = parse("interval = \"1s\"").err();
    assert!(err.is_some_and(|e| e.message.contains("too short")));
}

#[test]
fn unknown_keys_are_refused_with_their_position() {
    let err = parse("node = \"n\"\nintervall = \"5m\"\n").err();
    let err = err.map(|e| (e.line, e.to_string())).unwrap_or_default();
    assert_eq!(err.0, 2, "{}", err.1);
    assert!(err.1.contains("unknown field `intervall`"), "{}", err.1);
}

#[test]
fn server_url_and_node_are_checked() {
    assert_eq!(
        check_server("https://calseg:8443/"),
        Ok("https://calseg:8443".into())
    );
    assert!(check_server("https://calseg:8443/v1").is_err());
    assert!(check_server("calseg:8443").is_err());
    assert!(check_node("worker-17").is_ok());
    assert!(check_node("bad name").is_err());
    assert!(check_node("").is_err());
}

#[test]
fn servers_take_a_list_and_server_is_a_list_of_one() -> Result<(), ConfigError> {
    let list = parse("servers = [\"https://a:8443\", \"https://b:8443/\"]\n")?;
    assert_eq!(list.servers, ["https://a:8443", "https://b:8443"]);
    let one = parse("server = \"https://a:8443\"\n")?;
    assert_eq!(one.servers, ["https://a:8443"]);
    let multiline = parse("servers = [\n  \"https://a:8443\",\n  \"https://b:8443\",\n]\n")?;
    assert_eq!(multiline.servers.len(), 2);
    Ok(())
}

#[test]
fn server_and_servers_together_are_refused_at_the_second_naming_the_first() {
    let err =
        parse("node = \"n\"\nserver = \"https://a:8443\"\nservers = [\"https://b:8443\"]\n").err();
    let (line, field, text) = err
        .map(|e| (e.line, e.field.clone(), e.to_string()))
        .unwrap_or_default();
    assert_eq!((line, field.as_str()), (3, "servers"), "{text}");
    assert!(
        text.contains("line 2") && text.contains("not both"),
        "{text}"
    );
    let err = parse("servers = [\"https://b:8443\"]\n\nserver = \"https://a:8443\"\n").err();
    let (line, field, text) = err
        .map(|e| (e.line, e.field.clone(), e.to_string()))
        .unwrap_or_default();
    assert_eq!((line, field.as_str()), (3, "server"), "{text}");
    assert!(text.contains("already set at line 1"), "{text}");
}

#[test]
fn a_bad_url_in_the_list_is_reported_at_its_own_line() {
    let text = "servers = [\n  \"https://a:8443\",\n  \"http://b:8443\",\n]\n";
    let err = parse(text).err();
    let (line, column, field, message) = err
        .map(|e| (e.line, e.column, e.field.clone(), e.message))
        .unwrap_or_default();
    assert_eq!(
        (line, column, field.as_str()),
        (3, 3, "servers"),
        "{message}"
    );
    assert!(message.contains("https://"), "{message}");
}

#[test]
fn an_empty_list_and_duplicates_are_refused() {
    let err = parse("servers = []\n").err();
    let err = err
        .map(|e| (e.line, e.field.clone(), e.message))
        .unwrap_or_default();
    assert_eq!((err.0, err.1.as_str()), (1, "servers"));
    assert!(err.2.contains("no server"), "{}", err.2);

    let text =
        "servers = [\n  \"https://a:8443\",\n  \"https://b:8443\",\n  \"https://A:8443/\",\n]\n";
    let err = parse(text).err();
    let err = err.map(|e| (e.line, e.message)).unwrap_or_default();
    assert_eq!(err.0, 4, "{}", err.1);
    assert!(
        err.1.contains("twice") && err.1.contains("entry 1"),
        "{}",
        err.1
    );

    assert!(
        parse("servers = \"https://a:8443\"\n").is_err(),
        "a string is not a list"
    );
    assert!(check_servers::<&str>(&[]).is_err());
    assert_eq!(
        check_servers(&["https://a:443", "https://a"])
            .err()
            .map(|e| e.0),
        Some(Some(1)),
        "the default port is the same server"
    );
}

#[test]
fn limits_default_to_calico_dirs_and_units_and_are_checked_with_their_position()
-> Result<(), ConfigError> {
    let defaults = parse("")?.limits;
    assert_eq!(
        defaults.allowed_paths,
        [
            PathBuf::from("/etc/calico"),
            PathBuf::from("/etc/cni/net.d")
        ]
    );
    assert_eq!(defaults.allowed_units, ["calico-*.service"]);
    let set = parse("allowed_paths = [\"/srv//calico/\"]\nallowed_units = [\"felix.service\"]\n")?;
    assert_eq!(set.limits.allowed_paths, [PathBuf::from("/srv/calico")]);
    assert_eq!(set.limits.allowed_units, ["felix.service"]);
    for (text, field, column) in [
        (
            "allowed_paths = [\"/etc/calico\", \"/etc/../root\"]",
            "allowed_paths",
            33,
        ),
        ("allowed_paths = [\"etc/calico\"]", "allowed_paths", 18),
        ("allowed_paths = [\"/\"]", "allowed_paths", 18),
        ("allowed_units = [\"reboot.target\"]", "allowed_units", 18),
        ("allowed_units = [\"*\"]", "allowed_units", 18),
    ] {
        let err = parse(text).err();
        assert_eq!(
            err.as_ref().map(|e| (e.line, e.column, e.field.as_str())),
            Some((1, column, field)),
            "{text}: {err:?}"
        );
    }
    Ok(())
}

/// Issue 18 point 6: `[metrics] textfile_dir`, off when unset; unknown keys in the table are
/// refused with their position, like everywhere else.
#[test]
fn metrics_textfile_dir_is_an_absolute_path_and_off_when_unset() {
    let base = "node = \"n1\"\n";
    assert_eq!(parse(base).map(|s| s.textfile_dir), Ok(None));
    let set = parse(&format!(
        "{base}[metrics]\ntextfile_dir = \"/var/lib/prometheus/node-exporter\"\n"
    ));
    assert_eq!(
        set.map(|s| s.textfile_dir),
        Ok(Some(PathBuf::from("/var/lib/prometheus/node-exporter")))
    );
    let relative = parse(&format!("{base}[metrics]\ntextfile_dir = \"prom\"\n"))
        .expect_err("relative")
        .to_string();
    assert!(
        relative.starts_with("/etc/calseg/agent.toml:3:16: metrics.textfile_dir: `prom` must be"),
        "{relative}"
    );
    let unknown = parse(&format!("{base}[metrics]\ntextfile = \"/x\"\n"))
        .expect_err("unknown")
        .to_string();
    assert!(
        unknown.starts_with("/etc/calseg/agent.toml:3:1")
            && unknown.contains("unknown field `textfile`"),
        "{unknown}"
    );
}
