//! The Prometheus text exposition format (version 0.0.4) and the few metric kinds calseg needs:
//! counters and histograms keyed by label values, written out with their `# HELP` and `# TYPE`
//! lines. Label values are escaped; label sets stay small because callers pass bounded values
//! (route templates, stable error kinds), never raw input.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The `Content-Type` of a scrape answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a metrics lock leaves plain numbers behind: still good to read.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Counters of one metric, one per label-value set.
pub struct CounterVec<const N: usize> {
    labels: [&'static str; N],
    values: Mutex<BTreeMap<[String; N], u64>>,
}

impl<const N: usize> CounterVec<N> {
    pub const fn new(labels: [&'static str; N]) -> Self {
        Self {
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds one to the counter of `values`.
    pub fn inc(&self, values: [&str; N]) {
        *lock(&self.values)
            .entry(values.map(str::to_owned))
            .or_default() += 1;
    }

    /// The counter of `values` (0 when never incremented).
    pub fn get(&self, values: [&str; N]) -> u64 {
        lock(&self.values)
            .get(&values.map(str::to_owned))
            .copied()
            .unwrap_or(0)
    }
}

/// Histograms of one metric, one per label-value set, with shared bucket bounds.
pub struct HistogramVec<const N: usize> {
    labels: [&'static str; N],
    /// Upper bounds, ascending; `+Inf` is implied.
    bounds: &'static [f64],
    series: Mutex<BTreeMap<[String; N], Series>>,
}

#[derive(Clone, Default)]
struct Series {
    /// Observations per bucket (not cumulative); one more than `bounds` for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
}

impl<const N: usize> HistogramVec<N> {
    pub const fn new(labels: [&'static str; N], bounds: &'static [f64]) -> Self {
        Self {
            labels,
            bounds,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// Records one observation of `value` for `values`.
    pub fn observe(&self, values: [&str; N], value: f64) {
        let bucket = self
            .bounds
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(self.bounds.len());
        let mut series = lock(&self.series);
        let series = series.entry(values.map(str::to_owned)).or_default();
        series.counts.resize(self.bounds.len() + 1, 0);
        series.counts[bucket] += 1;
        series.sum += value;
    }
}

/// A scrape answer being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` of a metric family; every family starts with them.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let value = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{label}=\"{value}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// A whole counter family.
    pub fn counters<const N: usize>(&mut self, name: &str, help: &str, vec: &CounterVec<N>) {
        self.family(name, "counter", help);
        for (values, count) in lock(&vec.values).iter() {
            let labels: Vec<(&str, &str)> = vec
                .labels
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            self.sample(name, &labels, *count as f64);
        }
    }

    /// A whole histogram family: cumulative `_bucket`s up to `+Inf`, `_sum` and `_count`.
    pub fn histograms<const N: usize>(&mut self, name: &str, help: &str, vec: &HistogramVec<N>) {
        self.family(name, "histogram", help);
        let series = lock(&vec.series).clone();
        for (values, series) in &series {
            let labels: Vec<(&str, &str)> = vec
                .labels
                .iter()
                .copied()
                .zip(values.iter().map(String::as_str))
                .collect();
            let mut cumulative = 0;
            for (i, count) in series.counts.iter().enumerate() {
                cumulative += count;
                let le = vec.bounds.get(i).map_or("+Inf".to_owned(), |b| number(*b));
                let mut with_le = labels.clone();
                with_le.push(("le", &le));
                self.sample(&format!("{name}_bucket"), &with_le, cumulative as f64);
            }
            self.sample(&format!("{name}_sum"), &labels, series.sum);
            self.sample(&format!("{name}_count"), &labels, cumulative as f64);
        }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A sample value as Prometheus reads it (`+Inf`, `-Inf`, `NaN`, else a decimal).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}
