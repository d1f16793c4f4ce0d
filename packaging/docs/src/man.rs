//! Man pages: clap_mangen's sections of each command (NAME, SYNOPSIS, DESCRIPTION, OPTIONS,
//! SUBCOMMANDS, VERSION) with the hand-written ones clap cannot know (EXIT STATUS, FILES,
//! EXAMPLES, SEE ALSO) in man-pages(7) order.

use clap::Command;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use std::io::Write;
use std::path::Path;

/// The sections of a binary's own page that its command line does not say.
pub struct Extra {
    /// Exit status and what it means.
    pub exit_status: &'static [(u8, &'static str)],
    /// A path and what it holds.
    pub files: &'static [(&'static str, &'static str)],
    /// What the example does, and the command.
    pub examples: &'static [(&'static str, &'static str)],
    /// Other pages, `name(section)`.
    pub see_also: &'static [&'static str],
}

/// Writes `NAME.1` for the command and `NAME-SUB.1` for each visible subcommand (recursively)
/// into `dir`. The top page gets `extra`; each subcommand's page points back to it.
pub fn write_pages(command: Command, extra: &Extra, dir: &Path) -> std::io::Result<()> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let top = format!("{}(1)", command.get_name());
    // The top page's EXIT STATUS replaces a one-line summary in `after_help`.
    write_page(&command, &sections(extra), false, dir)?;
    let mut back = Roff::new();
    see_also(&mut back, &[top.as_str()]);
    write_subpages(&command, &back, dir)
}

fn write_subpages(command: &Command, back: &Roff, dir: &Path) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub, back, true, dir)?;
        write_subpages(sub, back, dir)?;
    }
    Ok(())
}

/// One page: clap_mangen's sections (EXTRA, from `after_help`, if `after_help`), then `extra`
/// before VERSION.
fn write_page(
    command: &Command,
    extra: &Roff,
    after_help: bool,
    dir: &Path,
) -> std::io::Result<()> {
    let man = Man::new(command.clone());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if command.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut page)?;
    }
    let has_after_help = command.get_after_help().or(command.get_after_long_help());
    if after_help && has_after_help.is_some() {
        man.render_extra_section(&mut page)?;
    }
    extra.to_writer(&mut page)?;
    if command.get_version().is_some() || command.get_long_version().is_some() {
        man.render_version_section(&mut page)?;
    }
    let mut file = std::fs::File::create(dir.join(man.get_filename()))?;
    file.write_all(&page)?;
    file.flush()
}

/// The roff of `extra`'s sections; an empty one is left out.
fn sections(extra: &Extra) -> Roff {
    let mut roff = Roff::new();
    if !extra.exit_status.is_empty() {
        roff.control("SH", ["EXIT STATUS"]);
        for (code, meaning) in extra.exit_status {
            roff.control("TP", []);
            roff.text([bold(code.to_string())]);
            roff.text([roman(*meaning)]);
        }
    }
    if !extra.files.is_empty() {
        roff.control("SH", ["FILES"]);
        for (path, what) in extra.files {
            roff.control("TP", []);
            roff.text([bold(*path)]);
            roff.text([roman(*what)]);
        }
    }
    if !extra.examples.is_empty() {
        roff.control("SH", ["EXAMPLES"]);
        // An example with no text continues the one before.
        for (what, command) in extra.examples {
            if !what.is_empty() {
                roff.control("PP", []);
                roff.text([roman(*what)]);
            }
            roff.control("PP", []);
            roff.control("RS", ["4"]);
            roff.text([bold(*command)]);
            roff.control("RE", []);
        }
    }
    see_also(&mut roff, extra.see_also);
    roff
}

/// SEE ALSO: `name(section)` pages, the names in bold.
pub fn see_also(roff: &mut Roff, pages: &[&str]) {
    if pages.is_empty() {
        return;
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (name, section) = page.split_once('(').unwrap_or((page, ""));
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(name));
        if !section.is_empty() {
            line.push(roman(format!("({section}")));
        }
    }
    roff.text(line);
}
