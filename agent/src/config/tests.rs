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
    assert_eq!(settings.server, None);
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
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let settings = parse(&uncommented)?;
    assert_eq!(
        settings.server.as_deref(),
        Some("https://calseg.example.com:8443")
    );
    assert_eq!(settings.node, "worker-17");
    Ok(())
}

#[test]
fn errors_carry_file_line_column_and_field() {
    let text = "node = \"n1\"\ninterval = \"5x\"\n";
    let err = parse(text).err();
    let err = err.as_ref().map(ToString::to_string).unwrap_or_default();
    assert!(
        err.starts_with("/etc/calseg/agent.toml:2:12: interval: `5x`: unknown unit"),
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
