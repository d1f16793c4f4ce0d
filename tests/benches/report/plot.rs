//! The report's SVG plots, drawn with plotters' SVG backend (text as SVG `<text>`, no fonts).

use crate::Results;
use calseg_tests::bench::secs;
use plotters::prelude::*;
use std::path::Path;

/// A plot file name and what it shows, for the report to link.
pub struct Plot {
    pub file: &'static str,
    pub title: &'static str,
}

/// One data series: label, colour, points, and whether its points are estimates (hollow).
pub struct Series {
    pub label: String,
    pub colour: RGBColor,
    pub points: Vec<(f64, f64, bool)>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Draws `series` on log-log axes into `path`.
pub fn log_log(
    path: &Path,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[Series],
) -> Result<(), String> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y, _) in all() {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if x0 > x1 || y0 <= 0.0 {
        return Err(format!("{caption}: nothing to plot"));
    }
    let root = SVGBackend::new(path, (760, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (x0 / 1.5..x1 * 1.5).log_scale(),
            (y0 / 2.0..y1 * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        // Only powers of ten are labelled: on a log axis the others crowd into each other.
        .x_label_formatter(&|x| power_of_ten_label(*x))
        .y_label_formatter(&|y| power_of_ten_label(*y))
        .draw()
        .map_err(err)?;
    for s in series {
        let colour = s.colour;
        let line = s.points.iter().map(|&(x, y, _)| (x, y));
        chart
            .draw_series(LineSeries::new(line, colour.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(s.points.iter().map(|&(x, y, estimate)| {
                let style = if estimate {
                    colour.stroke_width(2)
                } else {
                    colour.filled()
                };
                Circle::new((x, y), 5, style)
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

pub const CALSEG: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
pub const BASELINE: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// Draws every plot the results allow; one entry per plot, an error where it could not.
pub fn draw_all(results: &Results, dir: &Path) -> Vec<Result<Plot, String>> {
    let mut plots = Vec::new();
    if let Ok(rbac) = &results.rbac {
        let calseg = Series {
            label: "calseg (apply + certificates)".into(),
            colour: CALSEG,
            points: rbac
                .calseg
                .iter()
                .map(|c| (c.nodes as f64, secs(c.total()), false))
                .collect(),
        };
        let manual = Series {
            label: "manual: cfssl + etcdctl (hollow: sampled, extrapolated)".into(),
            colour: BASELINE,
            points: rbac
                .manual
                .iter()
                .map(|m| {
                    let sampled =
                        !matches!(m.method, calseg_tests::bench::rbac::ManualMethod::Full);
                    (m.nodes as f64, secs(m.total), sampled)
                })
                .collect(),
        };
        plots.push(
            log_log(
                &dir.join("provisioning.svg"),
                "Provisioning N nodes x 3 components from scratch",
                "nodes (N)",
                "seconds",
                &[calseg, manual],
            )
            .map(|()| Plot {
                file: "provisioning.svg",
                title: "Provisioning time vs N (log-log)",
            }),
        );
        let reconcile = Series {
            label: "calseg no-change reconcile (apply)".into(),
            colour: CALSEG,
            points: rbac
                .calseg
                .iter()
                .map(|c| (c.nodes as f64, secs(c.reconcile), false))
                .collect(),
        };
        let floor = Series {
            label: "floor: read every role and user in-process".into(),
            colour: BASELINE,
            points: rbac
                .calseg
                .iter()
                .map(|c| (c.nodes as f64, secs(c.read_floor), false))
                .collect(),
        };
        plots.push(
            log_log(
                &dir.join("reconcile.svg"),
                "No-change reconcile",
                "nodes (N)",
                "seconds",
                &[reconcile, floor],
            )
            .map(|()| Plot {
                file: "reconcile.svg",
                title: "No-change reconcile vs N (log-log)",
            }),
        );
    }
    let fleets: Vec<_> = results
        .fleet
        .iter()
        .filter_map(|f| f.as_ref().ok())
        .collect();
    if !fleets.is_empty() {
        let waves = Series {
            label: "in waves (canary 1, wave 20%, bake 0s)".into(),
            colour: CALSEG,
            points: fleets
                .iter()
                .map(|f| (f.agents as f64, secs(f.waves_time), false))
                .collect(),
        };
        let direct = Series {
            label: "without waves (every node at once)".into(),
            colour: BASELINE,
            points: fleets
                .iter()
                .map(|f| (f.agents as f64, secs(f.baseline_time), false))
                .collect(),
        };
        plots.push(
            log_log(
                &dir.join("fleet.svg"),
                "Time for a revision to reach every simulated agent",
                "agents",
                "seconds",
                &[waves, direct],
            )
            .map(|()| Plot {
                file: "fleet.svg",
                title: "Rollout time vs fleet size (log-log)",
            }),
        );
    }
    plots
}

/// `x` written plainly when it is a power of ten (0.01, 1, 1000), else nothing.
fn power_of_ten_label(x: f64) -> String {
    let exponent = x.log10().round();
    if x > 0.0 && (x.log10() - exponent).abs() < 1e-9 {
        if exponent >= 0.0 {
            format!("{x:.0}")
        } else {
            format!("{x}")
        }
    } else {
        String::new()
    }
}
