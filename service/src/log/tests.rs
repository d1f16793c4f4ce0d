use super::*;
use std::sync::{Arc, Mutex};

/// Everything the journal format writes while `emit` runs.
fn journal_lines(emit: impl FnOnce()) -> String {
    let buffer = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = Arc::clone(&buffer);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::TRACE)
        .with_ansi(false)
        .event_format(JournalLine)
        .with_writer(move || Sink(Arc::clone(&sink)))
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    let bytes = buffer.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn levels_map_to_sd_daemon_priorities() {
    assert_eq!(priority(&Level::ERROR), 3);
    assert_eq!(priority(&Level::WARN), 4);
    assert_eq!(priority(&Level::INFO), 6);
    assert_eq!(priority(&Level::DEBUG), 7);
    assert_eq!(priority(&Level::TRACE), 7);
    let text = journal_lines(|| {
        tracing::error!("e");
        tracing::warn!("w");
        tracing::info!("i");
        tracing::debug!("d");
    });
    assert_eq!(text, "<3>e\n<4>w\n<6>i\n<7>d\n");
}

#[test]
fn an_event_is_one_line_without_a_timestamp() {
    let errors = "policy.toml:3: unknown field\npolicy.toml:9: bad glob";
    let text = journal_lines(|| {
        tracing::error!(
            policy = "/etc/calseg/policy.toml",
            revision = 2,
            "policy reload refused:\n{errors}"
        );
    });
    assert_eq!(
        text,
        "<3>policy reload refused:\\npolicy.toml:3: unknown field\\npolicy.toml:9: bad glob \
         policy=/etc/calseg/policy.toml revision=2\n"
    );
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn field_values_with_spaces_quotes_or_line_breaks_stay_in_their_field() {
    let text = journal_lines(|| {
        tracing::warn!(
            reason = "two words",
            quoted = "a\"b",
            empty = "",
            multi = "x\ny",
            "m"
        );
    });
    assert_eq!(
        text,
        "<4>m reason=\"two words\" quoted=\"a\\\"b\" empty=\"\" multi=x\\ny\n"
    );
}

#[test]
fn a_failed_command_s_error_is_one_line_at_priority_err_in_the_journal() {
    assert_eq!(
        journal_error_line("the policy was refused:\npolicy.toml:3: bad"),
        "<3>error: the policy was refused:\\npolicy.toml:3: bad"
    );
}

#[test]
fn control_characters_are_escaped() {
    assert_eq!(escape("a\tb\u{1b}[31mc\r"), "a\\tb\\u{1b}[31mc\\r");
}

#[test]
fn journal_stream_is_device_colon_inode() {
    assert_eq!(parse_journal_stream("8:1234"), Some((8, 1234)));
    assert_eq!(parse_journal_stream("8"), None);
    assert_eq!(parse_journal_stream("x:1"), None);
}
