//! Where a policy problem is and how it reads: [`Diagnostic`], [`PolicyErrors`], and the
//! collector that turns TOML byte spans into 1-based line and column numbers.

use std::fmt;
use std::ops::Range;

/// How bad a diagnostic is. Errors reject the policy; warnings ride along in `Policy::warnings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a policy file, pointing at the offending key or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or other origin) the policy came from, as given to `parse`/`load`.
    pub origin: String,
    /// 1-based line; 0 when the problem concerns the whole file (for example it cannot be read).
    pub line: usize,
    /// 1-based column, counted in characters; 0 together with `line == 0`.
    pub column: usize,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    pub severity: Severity,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line == 0 {
            write!(f, "{}: {word}: {}", self.origin, self.message)?;
        } else {
            write!(
                f,
                "{}:{}:{}: {word}: {}",
                self.origin, self.line, self.column, self.message
            )?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Every error found in a policy: a policy is either wholly valid or rejected with all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<Diagnostic>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// A problem found by a check that does not know where its input sits in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    pub message: String,
    pub hint: String,
}

impl Problem {
    pub fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// Collects errors and warnings for one source text, locating byte spans as it goes.
pub(super) struct Diagnostics<'s> {
    origin: &'s str,
    source: &'s str,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl<'s> Diagnostics<'s> {
    pub fn new(origin: &'s str, source: &'s str) -> Self {
        Self {
            origin,
            source,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn error(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let diagnostic = self.make(Severity::Error, span, message.into(), hint.into());
        self.errors.push(diagnostic);
    }

    pub fn warn(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let diagnostic = self.make(Severity::Warning, span, message.into(), hint.into());
        self.warnings.push(diagnostic);
    }

    pub fn problem(&mut self, span: Range<usize>, problem: Problem) {
        self.error(span, problem.message, problem.hint);
    }

    /// The 1-based line of a byte offset, for messages that point at another place.
    pub fn line_of(&self, offset: usize) -> usize {
        line_col(self.source, offset).0
    }

    /// `origin:line:column` of a byte offset, for messages that name a second place.
    pub fn position(&self, offset: usize) -> String {
        let (line, column) = line_col(self.source, offset);
        format!("{}:{line}:{column}", self.origin)
    }

    fn make(
        &self,
        severity: Severity,
        span: Range<usize>,
        message: String,
        hint: String,
    ) -> Diagnostic {
        let (line, column) = line_col(self.source, span.start);
        Diagnostic {
            origin: self.origin.to_string(),
            line,
            column,
            message,
            hint: Some(hint),
            severity,
        }
    }
}

/// 1-based line and character column of a byte offset; offsets past the end point after the
/// last character, and offsets inside a UTF-8 sequence count as its character.
pub(super) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.as_bytes().get(..offset).unwrap_or_default();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(before.get(line_start..).unwrap_or_default())
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_one_based_line_and_column() {
        let source = "a = 1\nbé = 2\n";
        assert_eq!(line_col(source, 0), (1, 1));
        assert_eq!(line_col(source, 4), (1, 5));
        assert_eq!(line_col(source, 6), (2, 1));
        // 'é' is two bytes; the '=' at byte 10 is the 4th character of its line.
        assert_eq!(line_col(source, 10), (2, 4));
        assert_eq!(line_col(source, 999), (3, 1));
    }

    #[test]
    fn display_has_location_severity_and_hint() {
        let mut diags = Diagnostics::new("policy.toml", "x = 1\n  y = 2\n");
        diags.error(8..9, "bad y", "fix y");
        let text = PolicyErrors(diags.errors).to_string();
        assert_eq!(text, "policy.toml:2:3: error: bad y\n  hint: fix y");
    }
}
