//! How the list and show commands print: `-o text|wide|json` (`--json` is `-o json`), and one
//! plain table layout (comfy-table, no borders or colour) instead of hand-padded columns.

use clap::{Args, ValueEnum};
use comfy_table::{ContentArrangement, Table, presets};

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people: the usual columns.
    Text,
    /// For people: every column, nothing shortened.
    Wide,
    /// For scripts: the server's answer as JSON.
    Json,
}

/// The output flags of the list and show commands.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output format: text, wide (every column, nothing shortened) or json.
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        value_name = "FORMAT",
        default_value = "text"
    )]
    output: Format,
    /// The same as `-o json`.
    #[arg(long, conflicts_with = "output")]
    json: bool,
}

impl OutputArgs {
    /// The format asked for.
    pub fn format(&self) -> Format {
        if self.json { Format::Json } else { self.output }
    }
}

/// A table with `header` and `rows`, columns as wide as their widest cell, two spaces apart,
/// no borders, no trailing spaces (kubectl's layout). Cells must already be printable.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        out: OutputArgs,
    }

    /// Issue 18, point 7: `-o json|wide` beside `--json`, which stays an alias.
    #[test]
    fn issue_18_output_flag_and_json_alias() {
        let format = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
                .map(|c| c.out.format())
        };
        assert_eq!(format(&[]).ok(), Some(Format::Text));
        assert_eq!(format(&["-o", "wide"]).ok(), Some(Format::Wide));
        assert_eq!(format(&["--output", "json"]).ok(), Some(Format::Json));
        assert_eq!(format(&["--json"]).ok(), Some(Format::Json));
        assert!(format(&["-o", "yaml"]).is_err());
        assert!(format(&["--json", "-o", "wide"]).is_err());
    }

    #[test]
    fn tables_align_columns_without_borders_or_trailing_spaces() {
        let text = table(
            &["NODE", "STATE"],
            vec![
                vec!["worker-1".into(), "approved".into()],
                vec!["w2".into(), "pending".into()],
            ],
        );
        assert_eq!(
            text,
            "NODE      STATE\nworker-1  approved\nw2        pending\n"
        );
    }
}
