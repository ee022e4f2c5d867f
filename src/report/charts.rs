//! The run charts (latency, throughput, connections, resources; faults and cost in their own
//! files), drawn with plotters from saved results only, each as SVG and PNG, and the dispatcher
//! that draws them by [`Chart`].
//!
//! Every chart is one generic drawing function over a plotters backend, so the SVG and the PNG
//! are the same picture; the drawing toolkit they share (font, colours, axes, legends, render)
//! is `chart_kit`.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::chart_kit::{
    err, legend, legend_line, line, log_bounds, ms_label, no_data, render, series, t_max,
    time_axes, whole, Area, DrawResult, Frame, KeyAxis, Picture, FONT,
};
use super::load::{ReportError, RunData};
use crate::model_kind::ModelKind;
use crate::record::results::TimeseriesRow;

/// The charts every report has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chart {
    /// Delivery latency by percentile, corrected and uncorrected.
    Percentiles,
    /// p50, p99 and max per interval.
    LatencyOverTime,
    /// Offered vs achieved events/s per interval, errors marked.
    Throughput,
    /// Held connections over time and connect latency.
    Connections,
    /// CPU and RSS over time, generator and target.
    Resources,
    /// Retries, abandoned deliveries and reconnects over time; attempts per delivery.
    Faults,
    /// CPU per million events, memory per 10,000 connections, bytes per event.
    Cost,
}

impl Chart {
    /// Every chart, in report order.
    pub const ALL: [Chart; 7] = [
        Chart::Percentiles,
        Chart::LatencyOverTime,
        Chart::Throughput,
        Chart::Connections,
        Chart::Resources,
        Chart::Faults,
        Chart::Cost,
    ];

    /// File name without extension.
    pub fn stem(self) -> &'static str {
        match self {
            Chart::Percentiles => "latency_percentiles",
            Chart::LatencyOverTime => "latency_over_time",
            Chart::Throughput => "throughput",
            Chart::Connections => "connections",
            Chart::Resources => "resources",
            Chart::Faults => "faults",
            Chart::Cost => "cost",
        }
    }

    /// The title drawn on the chart.
    pub fn title(self) -> &'static str {
        match self {
            Chart::Percentiles => "Delivery latency by percentile",
            Chart::LatencyOverTime => "Delivery latency over time",
            Chart::Throughput => "Throughput: offered vs achieved",
            Chart::Connections => "Connections",
            Chart::Resources => "Resources: CPU and memory",
            Chart::Faults => "Retries, reconnects and attempts",
            Chart::Cost => "Cost per unit of work",
        }
    }

    /// Pixel size of the PNG (and the SVG's view box).
    pub fn size(self) -> (u32, u32) {
        match self {
            Chart::Percentiles | Chart::LatencyOverTime | Chart::Throughput => (1000, 560),
            Chart::Connections | Chart::Resources | Chart::Faults => (1000, 800),
            Chart::Cost => (1200, 520),
        }
    }
}

/// A chart as drawn: its SVG text, for pages that inline it.
pub struct Rendered {
    /// Which chart.
    pub chart: Chart,
    /// The SVG document.
    pub svg: String,
}

/// Draws every chart into `out` as `<stem>.svg` and `<stem>.png`.
pub fn render_all(runs: &[RunData], out: &Path) -> Result<Vec<Rendered>, ReportError> {
    Chart::ALL
        .into_iter()
        .map(|chart| render_one(chart, runs, out, chart.stem()))
        .collect()
}

/// Draws one chart into `out` as `<file_stem>.svg` and `<file_stem>.png`.
pub fn render_one(
    chart: Chart,
    runs: &[RunData],
    out: &Path,
    file_stem: &str,
) -> Result<Rendered, ReportError> {
    let svg = render(&RunChart { chart, runs }, out, file_stem)?;
    Ok(Rendered { chart, svg })
}

/// A chart of a set of runs, as the toolkit draws it.
struct RunChart<'r> {
    chart: Chart,
    runs: &'r [RunData],
}

impl Picture for RunChart<'_> {
    fn name(&self) -> &'static str {
        self.chart.stem()
    }

    fn size(&self) -> (u32, u32) {
        self.chart.size()
    }

    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DrawResult {
        let runs = self.runs;
        let area = root
            .titled(self.chart.title(), (FONT, 26).into_font())
            .map_err(err)?;
        match self.chart {
            Chart::Percentiles => percentiles(
                &area,
                runs,
                "latency",
                Some(("uncorrected_latency", "uncorrected")),
            ),
            Chart::LatencyOverTime => latency_over_time(&area, runs),
            Chart::Throughput => throughput(&area, runs),
            Chart::Connections => {
                let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 / 2);
                connections_over_time(&top, runs)?;
                percentiles(
                    &bottom,
                    runs,
                    "connect",
                    Some(("tls_handshake", "TLS handshake")),
                )
            }
            Chart::Resources => {
                let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 / 2);
                resources(&top, runs, false)?;
                resources(&bottom, runs, true)
            }
            Chart::Faults => super::faults::faults(&area, runs),
            Chart::Cost => super::cost::cost(&area, runs),
        }
    }
}

/// Percent label of a spectrum position x = log10(1 / (1 - q)): 0 -> 0%, 1 -> 90%, 3 -> 99.9%.
pub fn percentile_label(x: f64) -> String {
    let q = 1.0 - 10f64.powf(-x);
    let decimals = (x.round() as i32 - 2).max(0) as usize;
    format!("{:.*}%", decimals, q * 100.0)
}

/// The HdrHistogram percentile spectrum: (log10(1 / (1 - q)), latency in ms) points.
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let total = h.len().max(1) as f64;
    // The last point (q = 1) is drawn at "one in N", the rarest event the data can show.
    let last_x = total.log10().max(0.0);
    h.iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to();
            let x = if q >= 1.0 {
                last_x
            } else {
                (1.0 / (1.0 - q)).log10().min(last_x)
            };
            (x, v.value_iterated_to().max(1) as f64 / 1000.0)
        })
        .collect()
}

/// The percentile spectrum of `tag` (solid) and, where the results have it, `dashed`'s tag
/// (dashed, its label after the model's name) per model.
fn percentiles<DB: DrawingBackend>(
    area: &Area<DB>,
    runs: &[RunData],
    tag: &str,
    dashed: Option<(&str, &str)>,
) -> DrawResult {
    let mut lines = Vec::new();
    for s in series(runs) {
        if let Some(h) = s.run.hist(s.model, tag) {
            lines.push((s.name.clone(), s.color, false, spectrum(h)));
        }
        if let Some((h, label)) =
            dashed.and_then(|(t, label)| Some((s.run.hist(s.model, t)?, label)))
        {
            lines.push((format!("{} ({label})", s.name), s.color, true, spectrum(h)));
        }
    }
    let caption = if tag == "connect" && lines.iter().any(|l| l.2) {
        "connect latency (TCP + WebSocket upgrade, or TCP for webhooks); dashed: TLS handshake, apart"
    } else if tag == "connect" {
        "connect latency (TCP + WebSocket handshake, or TCP for webhooks)"
    } else {
        "solid: from each event's intended time (corrected); dashed: from the actual send"
    };
    if lines.is_empty() {
        return no_data(area, &format!("no {tag} latency in these results"));
    }
    let x_max = lines
        .iter()
        .flat_map(|l| l.3.iter().map(|p| p.0))
        .fold(2.0f64, f64::max)
        .min(6.0)
        + 0.05;
    let (y_lo, y_hi) = log_bounds(lines.iter().flat_map(|l| l.3.iter().map(|p| p.1)));
    let x = KeyAxis {
        lo: 0.0,
        hi: x_max,
        keys: [0.0, 2f64.log10(), 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
            .into_iter()
            .filter(|k| *k <= x_max)
            .map(|k| (k, percentile_label(k)))
            .collect(),
    };
    let mut chart = Frame {
        caption: Some(caption),
        margin: 12,
        x_label_area: 45,
        x_desc: "percentile",
        y_desc: "latency (log scale)",
        x_label: &|v| x.label(*v),
        y_label: &ms_label,
    }
    .build(area, x.clone(), (y_lo..y_hi).log_scale())?;
    for (name, color, dashed, points) in lines {
        line(&mut chart, points, color, 2, dashed, name)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

fn latency_over_time<DB: DrawingBackend>(area: &Area<DB>, runs: &[RunData]) -> DrawResult {
    let all = series(runs);
    let values = all.iter().flat_map(|s| {
        s.rows()
            .flat_map(|r| [r.p50_us, r.p99_us, r.max_us])
            .map(|us| us as f64 / 1000.0)
    });
    let (y_lo, y_hi) = log_bounds(values);
    if all.iter().all(|s| s.rows().all(|r| r.max_us == 0)) {
        return no_data(area, "no deliveries in these results");
    }
    let mut chart = Frame {
        caption: Some(
            "per 1 s interval, from each event's intended time; thin: p50, thick: p99, dashed: max",
        ),
        margin: 12,
        x_label_area: 45,
        x_desc: "time since start (s)",
        y_desc: "latency (log scale)",
        x_label: &whole,
        y_label: &ms_label,
    }
    .build(area, 0.0..t_max(runs), (y_lo..y_hi).log_scale())?;
    for s in &all {
        let pick = |f: fn(&TimeseriesRow) -> u64| -> Vec<(f64, f64)> {
            s.rows()
                .filter(|r| f(r) > 0)
                .map(|r| (r.t_s, f(r) as f64 / 1000.0))
                .collect()
        };
        let (color, name) = (s.color, &s.name);
        line(
            &mut chart,
            pick(|r| r.p50_us),
            color,
            1,
            false,
            format!("{name} p50"),
        )?;
        line(
            &mut chart,
            pick(|r| r.p99_us),
            color,
            3,
            false,
            format!("{name} p99"),
        )?;
        // Not `line`: its dashes are 6 on, 4 off; this thin one's are 5 on.
        chart
            .draw_series(DashedLineSeries::new(
                pick(|r| r.max_us),
                5,
                4,
                color.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("{name} max"))
            .legend(legend_line(color, 1, true));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// Per-interval rates: (t, count / interval length).
fn rates(rows: impl Iterator<Item = (f64, u64)>) -> Vec<(f64, f64)> {
    let mut prev_t = 0.0;
    rows.map(|(t, n)| {
        let dt = (t - prev_t).max(1e-3);
        prev_t = t;
        (t, n as f64 / dt)
    })
    .collect()
}

fn throughput<DB: DrawingBackend>(area: &Area<DB>, runs: &[RunData]) -> DrawResult {
    let all = series(runs);
    let mut lines = Vec::new();
    for s in &all {
        let offered = rates(s.rows().map(|r| (r.t_s, r.offered)));
        let achieved = rates(s.rows().map(|r| (r.t_s, r.delivered)));
        let errors: Vec<(f64, f64, u64)> = s
            .rows()
            .zip(&achieved)
            .filter(|(r, _)| r.errors > 0)
            .map(|(r, a)| (r.t_s, a.1, r.errors))
            .collect();
        lines.push((s, offered, achieved, errors));
    }
    let y_values = lines
        .iter()
        .flat_map(|l| l.1.iter().chain(&l.2).map(|p| p.1));
    let mut chart = time_axes(
        area,
        runs,
        "events/s per 1 s interval; dashed: offered (scheduled), solid: achieved (delivered), \u{25b2}: interval with errors",
        "events/s",
        y_values,
    )?;
    for (s, offered, achieved, errors) in lines {
        let color = s.color;
        line(
            &mut chart,
            offered,
            color,
            2,
            true,
            format!("{} offered", s.name),
        )?;
        line(
            &mut chart,
            achieved,
            color,
            2,
            false,
            format!("{} achieved", s.name),
        )?;
        if !errors.is_empty() {
            let total: u64 = errors.iter().map(|e| e.2).sum();
            chart
                .draw_series(
                    errors
                        .iter()
                        .map(|(t, y, _)| TriangleMarker::new((*t, *y), 7, RED.filled())),
                )
                .map_err(err)?
                .label(format!("{} errors ({total} failed attempts)", s.name))
                .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, RED.filled()));
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

fn connections_over_time<DB: DrawingBackend>(area: &Area<DB>, runs: &[RunData]) -> DrawResult {
    let all = series(runs);
    let y_values = all
        .iter()
        .flat_map(|s| s.rows().map(|r| r.connections.max(r.retries) as f64));
    let mut chart = time_axes(
        area,
        runs,
        "open connections at the end of each 1 s interval; \u{25cf}: reconnects in the interval (WebSocket)",
        "connections",
        y_values,
    )?;
    for s in &all {
        let color = s.color;
        let held = s.points(|r| r.connections as f64);
        line(
            &mut chart,
            held,
            color,
            2,
            false,
            format!("{} held", s.name),
        )?;
        // For webhooks the column counts retries, which the throughput chart covers.
        if s.model != ModelKind::Webhook {
            let reconnects: Vec<(f64, f64)> = s
                .rows()
                .filter(|r| r.retries > 0)
                .map(|r| (r.t_s, r.retries as f64))
                .collect();
            if !reconnects.is_empty() {
                chart
                    .draw_series(
                        reconnects
                            .into_iter()
                            .map(|p| Circle::new(p, 5, color.filled())),
                    )
                    .map_err(err)?
                    .label(format!("{} reconnects", s.name))
                    .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
            }
        }
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

fn resources<DB: DrawingBackend>(area: &Area<DB>, runs: &[RunData], memory: bool) -> DrawResult {
    let all = series(runs);
    type Pick = fn(&TimeseriesRow) -> f64;
    let (gen, target): (Pick, Pick) = if memory {
        (
            |r| r.gen_rss_bytes as f64 / 1048576.0,
            |r| r.target_rss_bytes as f64 / 1048576.0,
        )
    } else {
        (|r| r.gen_cpu_pct, |r| r.target_cpu_pct)
    };
    let (caption, y_desc) = if memory {
        (
            "resident memory (RSS), summed over every process of the role; solid: generator, dashed: target",
            "RSS (MiB)",
        )
    } else {
        (
            "CPU per 1 s interval (100% = one core), every process of the role; solid: generator, dashed: target",
            "CPU (%)",
        )
    };
    let y_values = all
        .iter()
        .flat_map(|s| s.rows().flat_map(|r| [gen(r), target(r)]));
    let mut chart = time_axes(area, runs, caption, y_desc, y_values)?;
    for s in &all {
        let (color, name) = (s.color, &s.name);
        line(
            &mut chart,
            s.points(gen),
            color,
            2,
            false,
            format!("{name} generator"),
        )?;
        line(
            &mut chart,
            s.points(target),
            color,
            2,
            true,
            format!("{name} target"),
        )?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels_read_as_percentiles() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(2f64.log10()), "50%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(4.0), "99.99%");
    }

    #[test]
    fn spectrum_climbs_to_the_maximum_at_one_in_n() {
        let mut h = crate::record::hist::new_hist();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let points = spectrum(&h);
        let last = points.last().unwrap();
        assert!((last.0 - 4.0).abs() < 1e-9, "last x {}", last.0);
        assert!((last.1 - 10.0).abs() < 0.02, "max 10 ms, got {}", last.1);
        assert!(points
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        let p50 = points.iter().find(|p| p.0 >= 2f64.log10() - 1e-9).unwrap();
        assert!((p50.1 - 5.0).abs() < 0.1, "p50 near 5 ms, got {}", p50.1);
    }
}
