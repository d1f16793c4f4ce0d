//! Section-5 man pages of the configuration files (server.toml(5), policy.toml(5),
//! agent.toml(5)), generated from the commented examples the packages install, so a page
//! never documents a key the example does not show or misses one it does.
//!
//! The examples follow one layout, read here:
//! - the opening comment block (up to the first blank line) describes the file;
//! - `[section]` or `[[section]]` (commented or not) starts a section;
//! - `key = value` or `# key = value` is a setting, documented by the comment lines just
//!   before it; consecutive settings share those lines, and more deeply indented comment lines
//!   right after a setting continue its value (a multi-line array);
//! - any other comment block is a paragraph of the section it is in, or of the next one when
//!   it is right above that section's header.

use clap_mangen::roff::{Roff, bold, roman};
use std::path::Path;

/// One configuration file's page.
pub struct ConfigPage {
    /// The file name, which is the page name: `server.toml`.
    pub name: &'static str,
    /// NAME's one-line description.
    pub summary: &'static str,
    /// Where the file lives, and what else is read with it.
    pub synopsis: &'static [&'static str],
    /// The commented example the package installs.
    pub example: &'static str,
    pub see_also: &'static [&'static str],
}

/// The three pages.
pub const PAGES: [ConfigPage; 3] = [
    ConfigPage {
        name: "server.toml",
        summary: "calseg-server's configuration",
        synopsis: &[
            "/etc/calseg/server.toml",
            "/etc/calseg/server.toml.d/*.toml (read after it, in name order; each overrides \
             the keys it sets, tables merging key by key; calseg-server init writes \
             50-init.toml there when server.toml is the package's)",
        ],
        example: include_str!("../../server/server.toml"),
        see_also: &[
            "calseg-server(1)",
            "calseg-server-init(1)",
            "policy.toml(5)",
        ],
    },
    ConfigPage {
        name: "policy.toml",
        summary: "calseg's segmentation policy",
        synopsis: &["/etc/calseg/policy.toml (server.toml's policy, or --policy)"],
        example: include_str!("../../../server/policy.example.toml"),
        see_also: &[
            "calseg-server(1)",
            "calseg-server-check(1)",
            "calseg-server-plan(1)",
            "server.toml(5)",
        ],
    },
    ConfigPage {
        name: "agent.toml",
        summary: "calseg-agent's configuration",
        synopsis: &["/etc/calseg/agent.toml (--config, or CALSEG_AGENT_CONFIG)"],
        example: include_str!("../../../agent/agent.example.toml"),
        see_also: &["calseg-agent(1)", "calseg-agent-run(1)", "policy.toml(5)"],
    },
];

/// Writes `NAME.5` for each page into `dir`.
pub fn write_pages(dir: &Path) -> std::io::Result<()> {
    for page in &PAGES {
        std::fs::write(dir.join(format!("{}.5", page.name)), render(page))?;
    }
    Ok(())
}

/// A piece of the example file.
#[derive(Debug, PartialEq, Eq)]
enum Block {
    /// The opening comment block.
    Description(Vec<String>),
    /// `[section]`.
    Section(String),
    /// Comment lines that document no setting.
    Paragraph(Vec<String>),
    /// Settings (key, value as written) and the lines that document them.
    Settings(Vec<(String, String)>, Vec<String>),
}

/// A setting line: `key = value`, commented or not.
fn setting(line: &str) -> Option<(String, String)> {
    let text = line.strip_prefix("# ").unwrap_or(line);
    let (key, value) = text.split_once(" = ")?;
    let is_key = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && key.starts_with(|c: char| c.is_ascii_lowercase());
    is_key.then(|| (key.to_owned(), value.trim().to_owned()))
}

/// A section header: `[x]`, `[[x]]`, or either commented out.
fn section(line: &str) -> Option<String> {
    let text = line.strip_prefix("# ").unwrap_or(line).trim_end();
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let name = inner.trim_matches(|c| c == '[' || c == ']');
    let is_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    is_name.then(|| text.to_owned())
}

/// Reads the example into blocks.
fn blocks(example: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut prose: Vec<String> = Vec::new();
    let mut settings: Vec<(String, String)> = Vec::new();
    let mut described = false;
    let flush = |out: &mut Vec<Block>,
                 prose: &mut Vec<String>,
                 settings: &mut Vec<(String, String)>,
                 described: &mut bool| {
        if !settings.is_empty() {
            out.push(Block::Settings(
                std::mem::take(settings),
                std::mem::take(prose),
            ));
        } else if !prose.is_empty() {
            let text = std::mem::take(prose);
            out.push(if *described {
                Block::Paragraph(text)
            } else {
                Block::Description(text)
            });
        }
        *described = true;
    };
    for line in example.lines() {
        let comment = line
            .strip_prefix('#')
            .map(|t| t.strip_prefix(' ').unwrap_or(t));
        if line.trim().is_empty() {
            flush(&mut out, &mut prose, &mut settings, &mut described);
        } else if let Some(name) = section(line) {
            // Comment lines right above a header introduce that section.
            let intro = if settings.is_empty() && described {
                std::mem::take(&mut prose)
            } else {
                Vec::new()
            };
            flush(&mut out, &mut prose, &mut settings, &mut described);
            out.push(Block::Section(name));
            if !intro.is_empty() {
                out.push(Block::Paragraph(intro));
            }
        } else if let Some(found) = setting(line) {
            settings.push(found);
        } else if let (Some(text), Some(last)) = (comment, settings.last_mut())
            && (text.starts_with(' ') || text.starts_with(']'))
        {
            // A multi-line value, e.g. `#     { prefix = "...", access = "read" },`.
            last.1.push(' ');
            last.1.push_str(text.trim());
        } else if let Some(text) = comment {
            if !settings.is_empty() {
                flush(&mut out, &mut prose, &mut settings, &mut described);
            }
            prose.push(text.to_owned());
        }
    }
    flush(&mut out, &mut prose, &mut settings, &mut described);
    out
}

/// Comment lines as paragraphs: an empty comment line (`#`) separates two.
fn paragraphs(roff: &mut Roff, lines: &[String]) {
    for paragraph in lines.split(|line| line.trim().is_empty()) {
        if !paragraph.is_empty() {
            roff.control("PP", []);
            roff.text([roman(paragraph.join(" "))]);
        }
    }
}

/// The page's roff.
pub fn render(page: &ConfigPage) -> String {
    let mut roff = Roff::new();
    roff.control("TH", [page.name.to_uppercase().as_str(), "5"]);
    roff.control("SH", ["NAME"]);
    roff.text([roman(format!("{} - {}", page.name, page.summary))]);
    roff.control("SH", ["SYNOPSIS"]);
    for (i, line) in page.synopsis.iter().enumerate() {
        if i > 0 {
            roff.control("br", []);
        }
        roff.text([bold(*line)]);
    }
    let mut in_settings = false;
    for block in blocks(page.example) {
        match block {
            Block::Description(lines) => {
                roff.control("SH", ["DESCRIPTION"]);
                // The first line is the file's title, which NAME says already.
                paragraphs(&mut roff, &lines[1.min(lines.len())..]);
            }
            Block::Section(name) => {
                if !in_settings {
                    roff.control("SH", ["SETTINGS"]);
                    in_settings = true;
                }
                roff.control("SS", [name.as_str()]);
            }
            Block::Paragraph(lines) => paragraphs(&mut roff, &lines),
            Block::Settings(settings, lines) => {
                if !in_settings {
                    roff.control("SH", ["SETTINGS"]);
                    in_settings = true;
                }
                roff.control("PP", []);
                for (i, (key, value)) in settings.iter().enumerate() {
                    if i > 0 {
                        roff.control("br", []);
                    }
                    roff.text([bold(key.as_str()), roman(format!(" = {value}"))]);
                }
                if !lines.is_empty() {
                    roff.control("RS", ["4"]);
                    roff.text([roman(lines.join(" "))]);
                    roff.control("RE", []);
                }
            }
        }
    }
    crate::man::see_also(&mut roff, page.see_also);
    roff.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setting and section the example shows is on its page, in bold.
    #[test]
    fn each_page_documents_every_setting_of_its_example() {
        for page in &PAGES {
            let roff = render(page);
            let mut keys = 0;
            for line in page.example.lines() {
                if let Some((key, _)) = setting(line) {
                    keys += 1;
                    assert!(
                        roff.contains(&format!("\\fB{key}\\fR")),
                        "{}: {key} is not documented",
                        page.name
                    );
                }
                if let Some(name) = section(line) {
                    assert!(
                        roff.contains(&format!(".SS {name}"))
                            || roff.contains(&format!(".SS \"{name}\"")),
                        "{}: {name}",
                        page.name
                    );
                }
            }
            assert!(keys >= 10, "{}: only {keys} settings found", page.name);
            for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "SETTINGS", "SEE ALSO"] {
                assert!(
                    roff.contains(&format!(".SH {heading}"))
                        || roff.contains(&format!(".SH \"{heading}\"")),
                    "{}: {heading}",
                    page.name
                );
            }
        }
    }

    #[test]
    fn the_example_layout_is_read_into_sections_settings_and_their_text() {
        let example = "# Top.\n# More top.\n\n# About api.\n[api]\n# Where.\n# listen = \"x\"\n\n# A note.\n\n# One\n# a = 1\n# b = 2\n# list = [\n#     { k = 1 },\n# ]\nc = 3\n";
        assert_eq!(
            blocks(example),
            vec![
                Block::Description(vec!["Top.".into(), "More top.".into()]),
                Block::Section("[api]".into()),
                Block::Paragraph(vec!["About api.".into()]),
                Block::Settings(
                    vec![("listen".into(), "\"x\"".into())],
                    vec!["Where.".into()]
                ),
                Block::Paragraph(vec!["A note.".into()]),
                Block::Settings(
                    vec![
                        ("a".into(), "1".into()),
                        ("b".into(), "2".into()),
                        ("list".into(), "[ { k = 1 }, ]".into()),
                        ("c".into(), "3".into()),
                    ],
                    vec!["One".into()]
                ),
            ]
        );
    }

    /// man(1) renders each page without a warning (man-db is in scripts/prereqs.sh).
    #[test]
    fn man_renders_each_page_without_warnings() {
        let dir = tempfile::tempdir().unwrap();
        write_pages(dir.path()).unwrap();
        for page in &PAGES {
            let path = dir.path().join(format!("{}.5", page.name));
            let output = std::process::Command::new("man")
                .args(["--warnings", "-l"])
                .arg(&path)
                .env("MANWIDTH", "100")
                .output()
                .expect("man(1) is missing: apt-get install man-db (scripts/prereqs.sh)");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success() && stderr.trim().is_empty(),
                "{}: {stderr}",
                page.name
            );
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(text.contains("SETTINGS"), "{}", page.name);
        }
    }
}
