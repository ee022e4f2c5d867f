//! Charts of `capacity` (latency against offered load, the knee marked) and `sweep` (each
//! model's latency and cost against the swept key, crossovers marked), each as SVG and PNG in
//! the style of the run charts (the same toolkit, `chart_kit`): titled, axes labelled with units,
//! a legend.

use std::path::Path;

use plotters::chart::SeriesAnno;
use plotters::prelude::*;

use super::chart_kit::{
    err, legend, legend_line, line, log_bounds, model_color, ms_label, no_data, render, tab10,
    Area, DrawResult, Frame, KeyAxis, Picture, FONT,
};
use crate::capacity::result::{fmt_load, CapacityResult};
use crate::model_kind::ModelKind;
use crate::slo::Slo;
use crate::sweep::result::{fmt_x, SweepResult};

/// A model's line: name, colour, points.
type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);
/// A latency figure of a step.
type StepFigure = fn(&crate::capacity::result::StepRecord) -> u64;

/// `capacity.svg` and `capacity.png`: p50, p99 and p99.9 against offered load (log-log), the
/// objective's latency limit and the highest passing load (the knee) marked.
pub fn capacity_chart(r: &CapacityResult, slo: &Slo, dir: &Path) -> DrawResult {
    render(&CapacityChart { r, slo }, dir, "capacity")
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The capacity chart of one search.
struct CapacityChart<'a> {
    r: &'a CapacityResult,
    slo: &'a Slo,
}

impl Picture for CapacityChart<'_> {
    fn name(&self) -> &'static str {
        "capacity"
    }

    fn size(&self) -> (u32, u32) {
        (1000, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DrawResult {
        draw_capacity(root, self.r, self.slo)
    }
}

fn draw_capacity<DB: DrawingBackend>(root: &Area<DB>, r: &CapacityResult, slo: &Slo) -> DrawResult {
    let title = format!("Latency vs offered load: {} ({})", r.model, r.scenario);
    let area = root.titled(&title, (FONT, 26)).map_err(err)?;
    let mut steps: Vec<_> = r.steps.iter().filter(|s| s.error.is_none()).collect();
    steps.sort_by(|a, b| a.load.total_cmp(&b.load));
    if steps.is_empty() {
        return no_data(&area, "no completed steps");
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
    let x = KeyAxis {
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
    let mut chart = Frame {
        caption: Some(&caption),
        margin: 14,
        x_label_area: 45,
        x_desc: &format!("offered load ({}, log scale)", r.unit),
        y_desc: if r.unit == "connections" {
            "connect latency (log scale)"
        } else {
            "delivery latency (log scale)"
        },
        x_label: &|v| x.label(*v),
        y_label: &ms_label,
    }
    .build(&area, x.clone(), (y_lo..y_hi).log_scale())?;
    let lines: [(&str, RGBColor, StepFigure); 3] = [
        ("p50", tab10::GREEN, |s| s.p50_us),
        ("p99", tab10::BLUE, |s| s.p99_us),
        ("p99.9", tab10::PURPLE, |s| s.p999_us),
    ];
    for (name, color, get) in lines {
        let points: Vec<(f64, f64)> = steps.iter().map(|s| (t(s.load), ms(get(s)))).collect();
        line(&mut chart, points, color, 2, false, name)?;
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
                tab10::RED.stroke_width(1),
            ))
            .map_err(err)?
            .label(format!("objective limit ({})", ms_label(&limit)))
            .legend(legend_line(tab10::RED, 1, false));
    }
    if let Some(max) = r.max_load {
        let label = format!("knee: max {} {}", fmt_load(max), r.unit);
        marker(&mut chart, t(max), (y_lo, y_hi))?
            .label(label)
            .legend(legend_line(BLACK, 2, false));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// The four sweep charts: (file stem, title, y axis, log y, value of a row).
type SweepMetric = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    fn(&crate::sweep::result::SweepRow) -> f64,
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
        render(&SweepChart { r, metric }, dir, metric.0).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One sweep chart: one metric of every run.
struct SweepChart<'a> {
    r: &'a SweepResult,
    metric: SweepMetric,
}

impl Picture for SweepChart<'_> {
    fn name(&self) -> &'static str {
        self.metric.0
    }

    fn size(&self) -> (u32, u32) {
        (1000, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &Area<DB>) -> DrawResult {
        draw_sweep(root, self.r, &self.metric)
    }
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
        return no_data(&area, "no runs");
    }
    let at = |value: &str| r.values.iter().position(|v| v == value).map(|i| pos[i]);
    let (lo, hi) = pos
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let pad = ((hi - lo) * 0.06).max(0.3);
    let x = KeyAxis {
        lo: lo - pad,
        hi: hi + pad,
        keys: pos
            .iter()
            .zip(&r.values)
            .map(|(p, v)| (*p, v.clone()))
            .collect(),
    };
    let mut lines: Vec<Line<'_>> = Vec::new();
    for model in ModelKind::ALL {
        let color = model_color(model, 0);
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
    let one_decimal = |v: &f64| fmt_x((v * 10.0).round() / 10.0);
    let mut frame = Frame {
        caption: None,
        margin: 14,
        x_label_area: 45,
        x_desc: &x_desc,
        y_desc,
        x_label: &|v| x.label(*v),
        y_label: &ms_label,
    };
    if log_y {
        let (y_lo, y_hi) = log_bounds(values);
        let mut chart = frame.build(&area, x.clone(), (y_lo..y_hi).log_scale())?;
        sweep_lines(&mut chart, &lines, &crossings, (y_lo, y_hi))
    } else {
        let y_hi = values.fold(0f64, f64::max).max(1e-9) * 1.2;
        frame.y_label = &one_decimal;
        let mut chart = frame.build(&area, x.clone(), 0.0..y_hi)?;
        sweep_lines(&mut chart, &lines, &crossings, (0.0, y_hi))
    }
}

fn sweep_lines<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<KeyAxis, Y>>,
    lines: &[Line<'_>],
    crossings: &[f64],
    (y_lo, y_hi): (f64, f64),
) -> DrawResult {
    for (model, color, points) in lines {
        let color = *color;
        line(chart, points.clone(), color, 2, false, *model)?;
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
            .map_err(err)?;
    }
    for (i, c) in crossings.iter().enumerate() {
        let anno = marker(chart, *c, (y_lo, y_hi))?;
        if i == 0 {
            anno.label("crossover").legend(legend_line(BLACK, 2, false));
        }
    }
    legend(chart, SeriesLabelPosition::UpperLeft)
}

/// A dashed black line across the plot at `x` (the knee, a crossover), for the caller to label.
fn marker<'c, 'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &'c mut ChartContext<'a, DB, Cartesian2d<KeyAxis, Y>>,
    x: f64,
    (y_lo, y_hi): (f64, f64),
) -> Result<&'c mut SeriesAnno<'a, DB>, String> {
    chart
        .draw_series(DashedLineSeries::new(
            vec![(x, y_lo), (x, y_hi)],
            6,
            4,
            BLACK.stroke_width(2),
        ))
        .map_err(err)
}
