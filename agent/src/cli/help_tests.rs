//! Issue 18, point 8: every argument of every `calseg-agent` subcommand carries help text (the
//! man pages and `--help` are generated from it).

use super::Cli;
use clap::CommandFactory;

#[test]
fn issue_18_every_argument_has_help_text() {
    let mut command = Cli::command();
    command.build();
    let mut missing = Vec::new();
    walk(&command, command.get_name(), &mut missing);
    assert!(
        missing.is_empty(),
        "arguments without help text: {missing:?}"
    );
}

/// Collects `path --flag` for each argument under `command` with no help text (clap's own
/// --help and --version apart).
fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
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
        walk(sub, &format!("{path} {}", sub.get_name()), missing);
    }
}
