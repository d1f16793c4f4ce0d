use super::*;
use clap::error::ErrorKind;

fn parse(args: &[&str]) -> Result<Args, clap::Error> {
    Args::try_parse_from(std::iter::once("calseg-docs").chain(args.iter().copied()))
}

/// Issue 18, point 8: `calseg-docs --help` wrote the docs into `./--help`.
#[test]
fn issue_18_help_is_help_and_the_output_directory_is_a_named_flag() {
    for help in ["--help", "-h"] {
        let kind = parse(&[help]).err().map(|e| e.kind());
        assert_eq!(kind, Some(ErrorKind::DisplayHelp), "{help}");
    }
    let kind = parse(&["--bogus"]).err().map(|e| e.kind());
    assert_eq!(kind, Some(ErrorKind::UnknownArgument));
    let kind = parse(&["docs"]).err().map(|e| e.kind());
    assert_eq!(
        kind,
        Some(ErrorKind::UnknownArgument),
        "a bare DIR is refused"
    );
    assert_eq!(
        parse(&[]).err().map(|e| e.kind()),
        Some(ErrorKind::MissingRequiredArgument)
    );
    let args = parse(&["--out", "docs"]).map(|a| a.out);
    assert_eq!(args.ok(), Some(PathBuf::from("docs")));
}

#[test]
fn writes_man_pages_for_subcommands_and_three_completions_per_binary() -> Result<()> {
    let dir = tempfile::tempdir()?;
    run(dir.path())?;
    for name in ["calseg-server", "calseg-agent"] {
        assert!(
            dir.path().join(format!("man/{name}.1")).is_file(),
            "{name}.1"
        );
        assert!(
            dir.path()
                .join(format!("completions/bash/{name}.bash"))
                .is_file()
        );
        assert!(
            dir.path()
                .join(format!("completions/zsh/_{name}"))
                .is_file()
        );
        assert!(
            dir.path()
                .join(format!("completions/fish/{name}.fish"))
                .is_file()
        );
    }
    assert!(dir.path().join("man/calseg-server-init.1").is_file());
    assert!(
        dir.path()
            .join("man/calseg-server-token-create.1")
            .is_file()
    );
    assert!(dir.path().join("man/calseg-agent-enroll.1").is_file());
    let page = std::fs::read_to_string(dir.path().join("man/calseg-server-init.1"))?;
    assert!(page.contains("\\-\\-san"), "init's page documents --san");
    Ok(())
}

/// Issue 18, point 8: each binary's page has EXIT STATUS (every code the binary returns),
/// FILES, EXAMPLES and SEE ALSO, in man-pages(7) order, and subcommand pages point back.
#[test]
fn issue_18_pages_have_exit_status_files_examples_and_see_also() -> Result<()> {
    let dir = tempfile::tempdir()?;
    run(dir.path())?;
    let read = |name: &str| std::fs::read_to_string(dir.path().join("man").join(name));
    for (name, codes, file) in [
        (
            "calseg-server.1",
            &[0, 1, 2, 64, 69][..],
            "/etc/calseg/server.toml",
        ),
        (
            "calseg-agent.1",
            &[0, 1, 2, 3, 64, 69, 77],
            "/etc/calseg/agent.toml",
        ),
    ] {
        let page = read(name)?;
        let at = |heading: &str| {
            page.find(&format!("\n.SH {heading}\n"))
                .unwrap_or_else(|| panic!("{name} has no {heading}:\n{page}"))
        };
        let order = [
            at("OPTIONS"),
            at("\"EXIT STATUS\""),
            at("FILES"),
            at("EXAMPLES"),
            at("\"SEE ALSO\""),
            at("VERSION"),
        ];
        assert!(order.is_sorted(), "{name}: sections out of order {order:?}");
        let exit = &page[order[1]..order[2]];
        for code in codes {
            assert!(
                exit.contains(&format!("\n.TP\n\\fB{code}\\fR\n")),
                "{name}: {code}"
            );
        }
        assert!(page[order[2]..order[3]].contains(file), "{name}: {file}");
    }
    assert!(read("calseg-server.1")?.contains("\\fBcalseg\\-agent\\fR(1)"));
    assert!(read("calseg-agent.1")?.contains("\\fBcalseg\\-server\\fR(1)"));
    let sub = read("calseg-server-plan.1")?;
    assert!(
        sub.contains(".SH \"SEE ALSO\"\n\\fBcalseg\\-server\\fR(1)"),
        "{sub}"
    );
    Ok(())
}

/// Issue 18, point 8: every argument of every subcommand of both binaries has help text (the
/// man pages and `--help` are made from it).
#[test]
fn issue_18_every_argument_has_help_text() {
    for (command, _) in commands() {
        let mut command = command;
        command.build();
        let mut missing = Vec::new();
        undocumented(&command, command.get_name(), &mut missing);
        assert!(
            missing.is_empty(),
            "arguments without help text: {missing:?}"
        );
    }
}

/// Collects `path --flag` for each argument under `command` with no help text (clap's own
/// --help and --version apart).
fn undocumented(command: &Command, path: &str, missing: &mut Vec<String>) {
    for arg in command.get_arguments() {
        let generated = matches!(arg.get_id().as_str(), "help" | "version");
        if !generated && arg.get_help().is_none() && arg.get_long_help().is_none() {
            let name = arg
                .get_long()
                .map_or_else(|| arg.get_id().to_string(), |long| format!("--{long}"));
            missing.push(format!("{path} {name}"));
        }
    }
    for sub in command.get_subcommands() {
        undocumented(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}
