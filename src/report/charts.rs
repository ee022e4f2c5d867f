//! The charts, drawn with plotters from saved results only, each as SVG and PNG.
//!
//! Every chart is one generic drawing function over a plotters backend, so the SVG and the PNG
//! are the same picture. The PNG text uses a font compiled into the binary (a subset of DejaVu
//! Sans, `assets/fonts/`), so charts render on a machine with no fonts installed.

use std::path::Path;
use std::sync::Once;

use hdrhistogram::Histogram;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::load::{ReportError, RunData};
use super::table::fmt_us;
use crate::model_kind::ModelKind;
use crate::record::results::TimeseriesRow;

/// The font family every chart draws text with (the embedded font is registered under it).
pub const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");

/// Makes the embedded font the one plotters draws `sans-serif` with; call before drawing.
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font checked in with the source; a test renders PNGs.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

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
    register_font();
    let failed = |reason: String| ReportError::Draw {
        chart: chart.stem(),
        reason,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, chart.size()).into_drawing_area();
        draw(chart, &root, runs).map_err(failed)?;
        root.present().map_err(|e| failed(e.to_string()))?;
    }
    let svg_path = out.join(format!("{file_stem}.svg"));
    std::fs::write(&svg_path, &svg).map_err(|e| ReportError::Write {
        path: svg_path,
        reason: e.to_string(),
    })?;
    let png_path = out.join(format!("{file_stem}.png"));
    {
        let root = BitMapBackend::new(&png_path, chart.size()).into_drawing_area();
        draw(chart, &root, runs).map_err(failed)?;
        root.present().map_err(|e| ReportError::Write {
            path: png_path.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(Rendered { chart, svg })
}

pub(super) type Area<'a, DB> = DrawingArea<DB, Shift>;

/// A linear axis from 0 to `max` whose ticks sit exactly at `keys` (plotters' own key-point
/// combinator loses the number formatting the mesh needs).
#[derive(Clone)]
pub(super) struct KeyAxis {
    pub(super) max: f64,
    pub(super) keys: Vec<f64>,
}

impl Ranged for KeyAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (span * value / self.max).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.keys.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.max
    }
}
pub(super) type DrawResult = Result<(), String>;

pub(super) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn draw<DB: DrawingBackend>(chart: Chart, root: &Area<'_, DB>, runs: &[RunData]) -> DrawResult {
    root.fill(&WHITE).map_err(err)?;
    let area = root
        .titled(chart.title(), (FONT, 26).into_font())
        .map_err(err)?;
    match chart {
        Chart::Percentiles => percentiles(&area, runs, "latency", "uncorrected_latency"),
        Chart::LatencyOverTime => latency_over_time(&area, runs),
        Chart::Throughput => throughput(&area, runs),
        Chart::Connections => {
            let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 / 2);
            connections_over_time(&top, runs)?;
            percentiles(&bottom, runs, "connect", "")
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

/// One line of the picture: a model in a run.
pub(super) struct Series<'a> {
    pub(super) run: &'a RunData,
    pub(super) model: ModelKind,
    pub(super) name: String,
    pub(super) color: RGBColor,
}

impl<'a> Series<'a> {
    /// This model's time-series rows in this run.
    pub(super) fn rows(&self) -> impl Iterator<Item = &'a TimeseriesRow> + 'a {
        self.run.series(self.model)
    }

    /// (time, value) for every interval.
    pub(super) fn points(&self, value: impl Fn(&TimeseriesRow) -> f64) -> Vec<(f64, f64)> {
        self.rows().map(|r| (r.t_s, value(r))).collect()
    }
}

const WEBHOOK_COLORS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(23, 190, 207),
];
const WEBSOCKET_COLORS: [RGBColor; 4] = [
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(227, 119, 194),
    RGBColor(140, 86, 75),
];

/// Every model of every run, colored by model (webhook blue, websocket orange on the first run).
pub(super) fn series(runs: &[RunData]) -> Vec<Series<'_>> {
    let mut out = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        for m in &run.summary.models {
            let palette = if m.model == ModelKind::Webhook {
                &WEBHOOK_COLORS
            } else {
                &WEBSOCKET_COLORS
            };
            out.push(Series {
                run,
                model: m.model,
                name: if runs.len() == 1 {
                    m.model.to_string()
                } else {
                    format!("{} · {}", m.model, run.label)
                },
                color: palette[i % palette.len()],
            });
        }
    }
    out
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

/// Milliseconds as a short figure with its unit (`850us`, `1.24ms`).
pub(super) fn ms_label(ms: &f64) -> String {
    fmt_us((ms * 1000.0).round() as u64)
}

/// Log-scale bounds around a set of positive values, with some room above and below.
pub(super) fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for v in values.filter(|v| *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.01, 1.0);
    }
    (lo * 0.7, (hi * 1.5).max(lo * 2.0))
}

/// A legend sample: a short solid or dashed stroke.
pub(super) fn legend_line(
    color: RGBColor,
    width: u32,
    dashed: bool,
) -> impl Fn((i32, i32)) -> DashedPathElement<std::vec::IntoIter<(i32, i32)>, i32> {
    // A dash as long as the sample draws it solid.
    let (dash, gap) = if dashed { (5, 3) } else { (20, 0) };
    move |(x, y)| {
        DashedPathElement::new(
            vec![(x, y), (x + 20, y)],
            dash,
            gap,
            ShapeStyle::from(color).stroke_width(width),
        )
    }
}

pub(super) fn no_data<DB: DrawingBackend>(area: &Area<'_, DB>, what: &str) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        format!("no {what} in these results"),
        (w as i32 / 2 - 120, h as i32 / 2),
        (FONT, 20).into_font().color(&RGBColor(120, 120, 120)),
    ))
    .map_err(err)
}

/// The percentile spectrum of `tag` (solid) and, when named, `dashed_tag` (dashed) per model.
fn percentiles<DB: DrawingBackend>(
    area: &Area<'_, DB>,
    runs: &[RunData],
    tag: &str,
    dashed_tag: &str,
) -> DrawResult {
    let mut lines = Vec::new();
    for s in series(runs) {
        if let Some(h) = s.run.hist(s.model, tag) {
            lines.push((s.name.clone(), s.color, false, spectrum(h)));
        }
        if let Some(h) = (!dashed_tag.is_empty())
            .then(|| s.run.hist(s.model, dashed_tag))
            .flatten()
        {
            lines.push((
                format!("{} (uncorrected)", s.name),
                s.color,
                true,
                spectrum(h),
            ));
        }
    }
    let caption = if tag == "connect" {
        "connect latency (TCP + WebSocket handshake, or TCP for webhooks)"
    } else {
        "solid: from each event's intended time (corrected); dashed: from the actual send"
    };
    if lines.is_empty() {
        return no_data(area, &format!("{tag} latency"));
    }
    let x_max = lines
        .iter()
        .flat_map(|l| l.3.iter().map(|p| p.0))
        .fold(2.0f64, f64::max)
        .min(6.0)
        + 0.05;
    let (y_lo, y_hi) = log_bounds(lines.iter().flat_map(|l| l.3.iter().map(|p| p.1)));
    let keys: Vec<f64> = [0.0, 2f64.log10(), 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        .into_iter()
        .filter(|k| *k <= x_max)
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 15))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(KeyAxis { max: x_max, keys }, (y_lo..y_hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (log scale)")
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&ms_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    for (name, color, dashed, points) in lines {
        let style = ShapeStyle::from(color).stroke_width(2);
        let anno = if dashed {
            chart
                .draw_series(DashedLineSeries::new(points, 6, 4, style))
                .map_err(err)?
        } else {
            chart
                .draw_series(LineSeries::new(points, style))
                .map_err(err)?
        };
        anno.label(name).legend(legend_line(color, 2, dashed));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

pub(super) fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, 14))
        .draw()
        .map_err(err)
}

/// A chart with time (s) across and a linear count or rate from 0 to `y_max` up.
pub(super) fn time_axes<'a, DB: DrawingBackend>(
    area: &'a Area<'_, DB>,
    runs: &[RunData],
    caption: &str,
    y_desc: &str,
    y_max: f64,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 15))
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..t_max(runs), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_desc(y_desc)
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    Ok(chart)
}

pub(super) fn t_max(runs: &[RunData]) -> f64 {
    runs.iter()
        .flat_map(|r| r.timeseries.iter().map(|row| row.t_s))
        .fold(1.0, f64::max)
}

fn latency_over_time<DB: DrawingBackend>(area: &Area<'_, DB>, runs: &[RunData]) -> DrawResult {
    let all = series(runs);
    let values = all.iter().flat_map(|s| {
        s.rows()
            .flat_map(|r| [r.p50_us, r.p99_us, r.max_us])
            .map(|us| us as f64 / 1000.0)
    });
    let (y_lo, y_hi) = log_bounds(values);
    if all.iter().all(|s| s.rows().all(|r| r.max_us == 0)) {
        return no_data(area, "deliveries");
    }
    let mut chart = ChartBuilder::on(area)
        .caption(
            "per 1 s interval, from each event's intended time; thin: p50, thick: p99, dashed: max",
            (FONT, 15),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..t_max(runs), (y_lo..y_hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("latency (log scale)")
        .y_label_formatter(&ms_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    for s in &all {
        let pick = |f: fn(&TimeseriesRow) -> u64| -> Vec<(f64, f64)> {
            s.rows()
                .filter(|r| f(r) > 0)
                .map(|r| (r.t_s, f(r) as f64 / 1000.0))
                .collect()
        };
        let color = s.color;
        chart
            .draw_series(LineSeries::new(pick(|r| r.p50_us), color.stroke_width(1)))
            .map_err(err)?
            .label(format!("{} p50", s.name))
            .legend(legend_line(color, 1, false));
        chart
            .draw_series(LineSeries::new(pick(|r| r.p99_us), color.stroke_width(3)))
            .map_err(err)?
            .label(format!("{} p99", s.name))
            .legend(legend_line(color, 3, false));
        chart
            .draw_series(DashedLineSeries::new(
                pick(|r| r.max_us),
                5,
                4,
                color.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("{} max", s.name))
            .legend(legend_line(color, 1, true));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// Per-interval rates: (t, count / interval length).
pub(super) fn rates(rows: impl Iterator<Item = (f64, u64)>) -> Vec<(f64, f64)> {
    let mut prev_t = 0.0;
    rows.map(|(t, n)| {
        let dt = (t - prev_t).max(1e-3);
        prev_t = t;
        (t, n as f64 / dt)
    })
    .collect()
}

fn throughput<DB: DrawingBackend>(area: &Area<'_, DB>, runs: &[RunData]) -> DrawResult {
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
    let y_max = lines
        .iter()
        .flat_map(|l| l.1.iter().chain(&l.2).map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = time_axes(
        area,
        runs,
        "events/s per 1 s interval; dashed: offered (scheduled), solid: achieved (delivered), \u{25b2}: interval with errors",
        "events/s",
        y_max,
    )?;
    for (s, offered, achieved, errors) in lines {
        let color = s.color;
        chart
            .draw_series(DashedLineSeries::new(offered, 6, 4, color.stroke_width(2)))
            .map_err(err)?
            .label(format!("{} offered", s.name))
            .legend(legend_line(color, 2, true));
        chart
            .draw_series(LineSeries::new(achieved, color.stroke_width(2)))
            .map_err(err)?
            .label(format!("{} achieved", s.name))
            .legend(legend_line(color, 2, false));
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

fn connections_over_time<DB: DrawingBackend>(area: &Area<'_, DB>, runs: &[RunData]) -> DrawResult {
    let all = series(runs);
    let y_max = all
        .iter()
        .flat_map(|s| s.rows().map(|r| r.connections.max(r.retries)))
        .fold(1, u64::max) as f64
        * 1.15;
    let mut chart = time_axes(
        area,
        runs,
        "open connections at the end of each 1 s interval; \u{25cf}: reconnects in the interval (WebSocket)",
        "connections",
        y_max,
    )?;
    for s in &all {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(
                s.points(|r| r.connections as f64),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("{} held", s.name))
            .legend(legend_line(color, 2, false));
        // For webhooks the column counts retries, which the throughput chart covers.
        if s.model == ModelKind::WebSocket {
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

fn resources<DB: DrawingBackend>(
    area: &Area<'_, DB>,
    runs: &[RunData],
    memory: bool,
) -> DrawResult {
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
    let y_max = all
        .iter()
        .flat_map(|s| s.rows().flat_map(|r| [gen(r), target(r)]))
        .fold(1.0, f64::max)
        * 1.15;
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
    let mut chart = time_axes(area, runs, caption, y_desc, y_max)?;
    for s in &all {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(s.points(gen), color.stroke_width(2)))
            .map_err(err)?
            .label(format!("{} generator", s.name))
            .legend(legend_line(color, 2, false));
        chart
            .draw_series(DashedLineSeries::new(
                s.points(target),
                6,
                4,
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("{} target", s.name))
            .legend(legend_line(color, 2, true));
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
