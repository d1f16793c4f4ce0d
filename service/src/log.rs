//! Logging to stderr. Under systemd, when `$JOURNAL_STREAM` names stderr's device and inode
//! (systemd.exec(5): the way to tell that stderr goes to the journal), every event is one line
//! with an sd-daemon(3) priority prefix (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug)
//! and no timestamp of its own (journald records one), so `journalctl -p err` finds errors;
//! line breaks inside a message or a field are escaped (`\n`), so an event is never split.
//! Otherwise (a terminal, a file, a test harness) the human format of tracing-subscriber, with
//! colour on a terminal only. `RUST_LOG` filters; info by default.

use std::fmt::{Debug, Write as _};
use std::io::IsTerminal;
use tracing::Level;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Sets up logging to stderr for the whole process (once; later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if stderr_is_journal() {
        builder
            .with_ansi(false)
            .event_format(JournalLine)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}

/// The final `error: ...` of a command that failed; `printable` is the message as the caller
/// escapes it for a terminal. To the journal (a command systemd runs, such as `ExecReload=`):
/// one line at priority err, line breaks escaped too. Otherwise as it is, over its lines.
pub fn error_line(printable: &str) -> String {
    if stderr_is_journal() {
        journal_error_line(printable)
    } else {
        format!("error: {printable}")
    }
}

/// `<3>error: message`, on one line.
pub fn journal_error_line(message: &str) -> String {
    format!("<{}>error: {}", priority(&Level::ERROR), escape(message))
}

/// Whether stderr is connected to the journal: `$JOURNAL_STREAM` is `DEVICE:INODE` of
/// stderr. A child that inherited the variable but not the stream (stderr redirected) is not.
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(expected) = std::env::var("JOURNAL_STREAM")
        .ok()
        .and_then(|v| parse_journal_stream(&v))
    else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|meta| (meta.dev(), meta.ino()) == expected)
}

/// `DEVICE:INODE` (decimal), as systemd sets `$JOURNAL_STREAM`.
pub fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// The syslog priority sd-daemon(3) prefixes stand for, per tracing level.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The journal's event format: `<N>message key=value ...`, one line.
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalLine;

impl<S, N> FormatEvent<S, N> for JournalLine
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = Line::default();
        event.record(&mut line);
        writeln!(
            writer,
            "<{}>{}{}",
            priority(event.metadata().level()),
            line.message,
            line.fields
        )
    }
}

/// An event's message and fields, escaped onto one line.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Line {
    fn push(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = escape(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), quote(value));
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.push(field, &format!("{value:?}"));
    }
}

/// `text` with control characters escaped: `\n`, `\r`, `\t`, others as `\u{..}`.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A field value: escaped, and in double quotes when empty or holding spaces or quotes.
fn quote(value: &str) -> String {
    let escaped = escape(value);
    if escaped.is_empty() || escaped.contains([' ', '"', '=']) {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests;
