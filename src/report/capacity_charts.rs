//! Charts of `capacity` (latency against offered load, the knee marked) and `sweep` (each
//! model's latency and cost against the swept key, crossovers marked), each as SVG and PNG in
//! the style of [`super::charts`]: titled, axes labelled with units, a legend.

use std::path::Path;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::charts::{log_bounds, ms_label, register_font, FONT};
use crate::capacity::{fmt_load, CapacityResult};
use crate::model_kind::ModelKind;
use crate::slo::Slo;
use crate::sweep::{fmt_x, SweepResult};

type Area<DB> = DrawingArea<DB, Shift>;
type DrawResult = Result<(), String>;
/// A model's line: name, colour, points.
type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);
/// A latency figure of a step.
type StepFigure = fn(&crate::capacity::StepRecord) -> u64;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

const WEBHOOK: RGBColor = RGBColor(31, 119, 180);
const WEBSOCKET: RGBColor = RGBColor(255, 127, 14);
const GREY: RGBColor = RGBColor(120, 120, 120);
const RED: RGBColor = RGBColor(214, 39, 40);

/// Draws one picture twice, as `<stem>.svg` and `<stem>.png` in `dir` (one closure per
/// backend: the same drawing function, instantiated for each).
fn render(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
    svg_draw: impl Fn(&Area<SVGBackend<'_>>) -> DrawResult,
    png_draw: impl Fn(&Area<BitMapBackend<'_>>) -> DrawResult,
) -> DrawResult {
    register_font();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        svg_draw(&root)?;
        root.present().map_err(err)?;
    }
    std::fs::write(dir.join(format!("{stem}.svg")), svg).map_err(err)?;
    let png = dir.join(format!("{stem}.png"));
    let root = BitMapBackend::new(&png, size).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    png_draw(&root)?;
    root.present().map_err(err)
}

/// A linear axis over transformed positions (log10 of a load, or a value's index) whose ticks
/// sit exactly at the points measured, labelled with the values as the user wrote them.
#[derive(Clone)]
struct PointsAxis {
    lo: f64,
    hi: f64,
    keys: Vec<(f64, String)>,
}

impl PointsAxis {
    fn label(&self, t: f64) -> String {
        self.keys
            .iter()
            .find(|(k, _)| (k - t).abs() < 1e-9)
            .map(|(_, l)| l.clone())
            .unwrap_or_default()
    }
}

impl Ranged for PointsAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (span * (value - self.lo) / (self.hi - self.lo)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        self.keys.iter().map(|k| k.0).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FONT, 14))
        .draw()
        .map_err(err)
}

fn no_data<DB: DrawingBackend>(area: &Area<DB>, what: &str) -> DrawResult {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        format!("no {what}"),
        (w as i32 / 2 - 120, h as i32 / 2),
        (FONT, 20).into_font().color(&GREY),
    ))
    .map_err(err)
}

/// `capacity.svg` and `capacity.png`: p50, p99 and p99.9 against offered load (log-log), the
/// objective's latency limit and the highest passing load (the knee) marked.
pub fn capacity_chart(r: &CapacityResult, slo: &Slo, dir: &Path) -> DrawResult {
    render(
        dir,
        "capacity",
        (1000, 600),
        |a| draw_capacity(a, r, slo),
        |a| draw_capacity(a, r, slo),
    )
}

fn draw_capacity<DB: DrawingBackend>(root: &Area<DB>, r: &CapacityResult, slo: &Slo) -> DrawResult {
    let title = format!("Latency vs offered load: {} ({})", r.model, r.scenario);
    let area = root.titled(&title, (FONT, 26)).map_err(err)?;
    let mut steps: Vec<_> = r.steps.iter().filter(|s| s.error.is_none()).collect();
    steps.sort_by(|a, b| a.load.total_cmp(&b.load));
    if steps.is_empty() {
        return no_data(&area, "completed steps");
    }
    let t = |load: f64| load.max(1e-9).log10();
    let (lo, hi) = (t(steps[0].load), t(steps[steps.len() - 1].load));
    let pad = ((hi - lo) * 0.06).max(0.15);
    let mut keys: Vec<(f64, String)> = r
        .steps
        .iter()
        .filter(|s| s.phase == "step" || Some(s.load) == r.max_load)
        .map(|s| (t(s.load), fmt_load(s.load)))
        .collect();
    keys.sort_by(|a, b| a.0.total_cmp(&b.0));
    keys.dedup_by(|a, b| (a.0 - b.0).abs() < 0.03);
    let x = PointsAxis {
        lo: lo - pad,
        hi: hi + pad,
        keys,
    };
    let ms = |us: u64| (us as f64 / 1000.0).max(0.001);
    let limit_ms = slo.latency_limit_us().map(|(us, _)| us / 1000.0);
    let (y_lo, y_hi) = log_bounds(
        steps
            .iter()
            .flat_map(|s| [ms(s.p50_us), ms(s.p999_us)])
            .chain(limit_ms),
    );
    let caption = format!(
        "objective: {} · filled: held it, hollow: broke it · bottleneck: {}",
        r.slo,
        r.bottleneck.name()
    );
    let mut chart = ChartBuilder::on(&area)
        .caption(caption, (FONT, 15))
        .margin(14)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(x.clone(), (y_lo..y_hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(format!("offered load ({}, log scale)", r.unit))
        .y_desc(if r.unit == "connections" {
            "connect latency (log scale)"
        } else {
            "delivery latency (log scale)"
        })
        .x_label_formatter(&|v| x.label(*v))
        .y_label_formatter(&ms_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    let lines: [(&str, RGBColor, StepFigure); 3] = [
        ("p50", RGBColor(44, 160, 44), |s| s.p50_us),
        ("p99", WEBHOOK, |s| s.p99_us),
        ("p99.9", RGBColor(148, 103, 189), |s| s.p999_us),
    ];
    for (name, color, get) in lines {
        let points: Vec<(f64, f64)> = steps.iter().map(|s| (t(s.load), ms(get(s)))).collect();
        chart
            .draw_series(LineSeries::new(
                points,
                ShapeStyle::from(color).stroke_width(2),
            ))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(steps.iter().map(|s| {
                let style = if s.pass {
                    color.filled()
                } else {
                    color.stroke_width(2)
                };
                Circle::new((t(s.load), ms(get(s))), 4, style)
            }))
            .map_err(err)?;
    }
    if let Some(limit) = limit_ms {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x.lo, limit), (x.hi, limit)],
                8,
                5,
                RED.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("objective limit ({})", ms_label(&limit)))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(1)));
    }
    if let Some(max) = r.max_load {
        let label = format!("knee: max {} {}", fmt_load(max), r.unit);
        chart
            .draw_series(DashedLineSeries::new(
                vec![(t(max), y_lo), (t(max), y_hi)],
                6,
                4,
                BLACK.stroke_width(2),
            ))
            .map_err(err)?
            .label(label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    }
    legend(&mut chart)
}

/// The four sweep charts: (file stem, title, y axis, log y, value of a row).
type SweepMetric = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    fn(&crate::sweep::SweepRow) -> f64,
);

const SWEEP_CHARTS: [SweepMetric; 4] = [
    (
        "sweep_latency",
        "p99 delivery latency",
        "p99 latency (log scale)",
        true,
        |r| (r.p99_us as f64 / 1000.0).max(0.001),
    ),
    (
        "sweep_cpu",
        "CPU-seconds per million events (generator + target)",
        "CPU s / 1M events",
        false,
        |r| r.cpu_s_per_million_events,
    ),
    (
        "sweep_memory",
        "Memory: peak RSS (generator + target)",
        "MiB",
        false,
        |r| r.memory_bytes as f64 / 1048576.0,
    ),
    (
        "sweep_connections",
        "Connections held (peak)",
        "connections",
        false,
        |r| r.connections_peak as f64,
    ),
];

/// File stems of the sweep charts (each written as `.svg` and `.png`).
pub fn sweep_chart_stems() -> [&'static str; 4] {
    SWEEP_CHARTS.map(|c| c.0)
}

/// Writes `sweep_latency`, `sweep_cpu`, `sweep_memory` and `sweep_connections` (SVG + PNG).
pub fn sweep_charts(r: &SweepResult, dir: &Path) -> DrawResult {
    for metric in SWEEP_CHARTS {
        render(
            dir,
            metric.0,
            (1000, 560),
            |a| draw_sweep(a, r, &metric),
            |a| draw_sweep(a, r, &metric),
        )?;
    }
    Ok(())
}

/// The x position of each value: log10 when every value is a positive number spanning 10x or
/// more, the number itself when all are numbers, else the value's index.
fn sweep_positions(r: &SweepResult) -> (Vec<f64>, &'static str) {
    let nums: Option<Vec<f64>> = r
        .values
        .iter()
        .map(|v| v.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect();
    match nums {
        Some(n) if !n.is_empty() => {
            let (min, max) = n
                .iter()
                .fold((f64::INFINITY, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
            if min > 0.0 && max / min >= 10.0 {
                (n.iter().map(|x| x.log10()).collect(), ", log scale")
            } else {
                (n, "")
            }
        }
        _ => ((0..r.values.len()).map(|i| i as f64).collect(), ""),
    }
}

fn draw_sweep<DB: DrawingBackend>(root: &Area<DB>, r: &SweepResult, m: &SweepMetric) -> DrawResult {
    let (stem, title, y_desc, log_y, get) = *m;
    let area = root
        .titled(&format!("{title} vs {}", r.key), (FONT, 24))
        .map_err(err)?;
    let (pos, scale) = sweep_positions(r);
    if pos.is_empty() || r.rows.is_empty() {
        return no_data(&area, "runs");
    }
    let at = |value: &str| r.values.iter().position(|v| v == value).map(|i| pos[i]);
    let (lo, hi) = pos
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let pad = ((hi - lo) * 0.06).max(0.3);
    let x = PointsAxis {
        lo: lo - pad,
        hi: hi + pad,
        keys: pos
            .iter()
            .zip(&r.values)
            .map(|(p, v)| (*p, v.clone()))
            .collect(),
    };
    let mut lines: Vec<Line<'_>> = Vec::new();
    for (model, color) in [
        (ModelKind::Webhook, WEBHOOK),
        (ModelKind::WebSocket, WEBSOCKET),
    ] {
        let mut points: Vec<(f64, f64)> = r
            .rows
            .iter()
            .filter(|row| row.model == model)
            .filter_map(|row| at(&row.value).map(|p| (p, get(row))))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            lines.push((model.name(), color, points));
        }
    }
    let cross_metric = match stem {
        "sweep_cpu" => Some("cpu_s_per_million_events"),
        "sweep_memory" => Some("memory_bytes"),
        _ => None,
    };
    let crossings: Vec<f64> = r
        .crossovers
        .iter()
        .filter(|c| Some(c.metric.as_str()) == cross_metric)
        .map(|c| {
            if scale.is_empty() {
                c.at
            } else {
                c.at.max(1e-9).log10()
            }
        })
        .collect();
    let x_desc = format!("{}{scale}", r.key);
    let values = lines.iter().flat_map(|l| l.2.iter().map(|p| p.1));
    if log_y {
        let (y_lo, y_hi) = log_bounds(values);
        let mut chart = ChartBuilder::on(&area)
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(x.clone(), (y_lo..y_hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|v| x.label(*v))
            .y_label_formatter(&ms_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(err)?;
        sweep_lines(&mut chart, &lines, &crossings, (y_lo, y_hi))
    } else {
        let y_hi = values.fold(0f64, f64::max).max(1e-9) * 1.2;
        let mut chart = ChartBuilder::on(&area)
            .margin(14)
            .x_label_area_size(45)
            .y_label_area_size(80)
            .build_cartesian_2d(x.clone(), 0.0..y_hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|v| x.label(*v))
            .y_label_formatter(&|v| fmt_x((v * 10.0).round() / 10.0))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(err)?;
        sweep_lines(&mut chart, &lines, &crossings, (0.0, y_hi))
    }
}

fn sweep_lines<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<PointsAxis, Y>>,
    lines: &[Line<'_>],
    crossings: &[f64],
    (y_lo, y_hi): (f64, f64),
) -> DrawResult {
    for (model, color, points) in lines {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                ShapeStyle::from(color).stroke_width(2),
            ))
            .map_err(err)?
            .label(*model)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(err)?;
    }
    for (i, c) in crossings.iter().enumerate() {
        let anno = chart
            .draw_series(DashedLineSeries::new(
                vec![(*c, y_lo), (*c, y_hi)],
                6,
                4,
                BLACK.stroke_width(2),
            ))
            .map_err(err)?;
        if i == 0 {
            anno.label("crossover").legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2))
            });
        }
    }
    legend(chart)
}
