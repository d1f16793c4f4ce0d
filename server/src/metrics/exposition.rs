//! The two text formats of a scrape and the label values in them. `prometheus-client` writes
//! OpenMetrics; Prometheus asks for it by `Accept` header and gets it as written. Anything else
//! (curl, `promtool check metrics`, older scrapers) gets the Prometheus text format 0.0.4,
//! which for calseg's counters, gauges and histograms differs in three places only: a
//! counter's `HELP` and `TYPE` name its `_total` sample, and there is no `# UNIT` or `# EOF`.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};
use prometheus_client::registry::Registry;
use std::fmt::Write;

/// The `Content-Type` of an OpenMetrics answer.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of a text-format answer.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which text a scrape answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it (as Prometheus does), else text 0.0.4.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS,
            Self::Text => TEXT,
        }
    }

    /// `registry` written in this format.
    pub fn encode(self, registry: &Registry) -> String {
        let mut openmetrics = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug, and an empty
        // scrape shows it.
        if prometheus_client::encoding::text::encode(&mut openmetrics, registry).is_err() {
            tracing::error!("the metrics could not be encoded");
            openmetrics.clear();
        }
        match self {
            Self::OpenMetrics => openmetrics,
            Self::Text => text_of(&openmetrics),
        }
    }
}

/// OpenMetrics text (of counters, gauges and histograms) as text format 0.0.4.
pub fn text_of(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let sample = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_owned()
            };
            if let Some((_, text)) = help.take().filter(|(helped, _)| *helped == name) {
                let _ = writeln!(out, "# HELP {sample} {text}");
            }
            let _ = writeln!(out, "# TYPE {sample} {kind}");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A label value, escaped when written (`prometheus-client` writes values as they are): the
/// values calseg passes are bounded (route templates, error kinds, node and component names),
/// but a quote in one must not break the scrape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value(pub String);

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl EncodeLabelValue for Value {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for c in self.0.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A label set of `N` labels.
pub type Labels<const N: usize> = [(&'static str, Value); N];

/// The label set `names` = `values`.
pub fn labels<const N: usize>(names: [&'static str; N], values: [&str; N]) -> Labels<N> {
    let mut values = values.into_iter();
    names.map(|name| (name, Value::from(values.next().unwrap_or_default())))
}
