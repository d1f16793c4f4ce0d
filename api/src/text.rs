//! Text from the other side, made safe to show a person.
//!
//! A node's report reaches the operator's terminal through the admin commands, and the server's
//! manifest and error messages reach the agent's. Neither side may be able to move the cursor,
//! rewrite the screen, set the window title (ESC and OSC sequences), forge a table row (CR, LF)
//! or reorder text (bidirectional overrides). Every human-readable output passes such text
//! through [`printable`] (one field, one line) or [`printable_lines`] (a message that may span
//! lines). JSON output needs neither: serde escapes control characters itself.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control, line-breaking and bidirectional-formatting character written as
/// an escape (`\u{1b}`, `\n`, `\r`, `\t`), so it stays on one line and cannot drive a terminal.
pub fn printable(text: &str) -> Cow<'_, str> {
    escape(text, |_| true)
}

/// Like [`printable`], but keeps line feeds and tabs: for messages that span lines on purpose
/// (errors, reports). Carriage returns are still escaped, so no line can overwrite another.
pub fn printable_lines(text: &str) -> Cow<'_, str> {
    escape(text, |c| c != '\n' && c != '\t')
}

/// Escapes each character that is unsafe and for which `escape_it` holds.
fn escape(text: &str, escape_it: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| unsafe_char(c) && escape_it(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !(unsafe_char(c) && escape_it(c)) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    Cow::Owned(out)
}

/// C0 and C1 controls and DEL, Unicode line and paragraph separators, and the characters that
/// change the order or visibility of text (bidirectional embeddings, overrides and isolates,
/// zero-width characters, the byte-order mark).
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "calico-node.worker-17: installed (ünïcode ok)";
        assert!(matches!(printable(text), Cow::Borrowed(t) if t == text));
        assert!(matches!(printable_lines("a\nb"), Cow::Borrowed("a\nb")));
    }

    #[test]
    fn escape_and_osc_sequences_cannot_reach_the_terminal() {
        let hostile = "\u{1b}[2J\u{1b}]0;owned\u{7}\u{9b}31m";
        let shown = printable(hostile);
        assert_eq!(shown, "\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{9b}31m");
        assert!(!shown.chars().any(char::is_control));
    }

    #[test]
    fn line_breaks_cannot_forge_a_row() {
        let hostile = "ok\r\nnode9    approved  2099-01-01";
        assert_eq!(printable(hostile), "ok\\r\\nnode9    approved  2099-01-01");
        assert_eq!(printable("a\u{2028}b\u{85}c"), "a\\u{2028}b\\u{85}c");
        // Messages keep their own lines, but not a carriage return.
        assert_eq!(printable_lines("one\ntwo\r"), "one\ntwo\\r");
        assert_eq!(printable_lines("\u{1b}[1A"), "\\u{1b}[1A");
    }

    #[test]
    fn bidirectional_and_invisible_characters_are_shown() {
        assert_eq!(
            printable("good\u{202e}txt.exe\u{2066}\u{200b}\u{feff}"),
            "good\\u{202e}txt.exe\\u{2066}\\u{200b}\\u{feff}"
        );
    }
}
