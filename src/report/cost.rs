//! The cost chart: CPU-seconds per million events, MiB per 10,000 held connections and bytes on
//! the wire per event, generator and target stacked, per model (and run).

use plotters::prelude::*;

use super::chart_kit::{err, series, whole, Area, DrawResult, KeyAxis, FONT};
use super::load::RunData;
use crate::model_kind::ModelKind;

/// One bar of the cost chart: generator and target parts, or why there is none.
struct Bar {
    generator: f64,
    target: f64,
    missing: Option<&'static str>,
}

/// The three costs of one model: CPU-seconds per million events, MiB per 10,000 connections,
/// bytes on the wire per event.
pub fn costs(run: &RunData, model: ModelKind) -> [(f64, f64, Option<&'static str>); 3] {
    let Some(m) = run.summary.models.iter().find(|m| m.model == model) else {
        return [(0.0, 0.0, Some("no data")); 3];
    };
    let per_million = |cpu_s: f64| cpu_s / m.delivered.max(1) as f64 * 1e6;
    let cpu = if m.delivered > 0 {
        (
            per_million(m.resources.generator.cpu_s),
            per_million(m.resources.target.cpu_s),
            None,
        )
    } else {
        (0.0, 0.0, Some("nothing delivered"))
    };
    let memory = match m.fleet() {
        Some(ws) if m.connections.peak > 0 => (
            ws.memory_per_connection_bytes.generator * 1e4 / 1048576.0,
            ws.memory_per_connection_bytes.target * 1e4 / 1048576.0,
            None,
        ),
        Some(_) => (0.0, 0.0, Some("no connections held")),
        None => (0.0, 0.0, Some("holds no connection per subscriber")),
    };
    let wire = if m.delivered > 0 {
        (m.bytes_per_event, 0.0, None)
    } else {
        (0.0, 0.0, Some("nothing delivered"))
    };
    [cpu, memory, wire]
}

pub(super) fn cost<DB: DrawingBackend>(area: &Area<DB>, runs: &[RunData]) -> DrawResult {
    let all = series(runs);
    let panels = area.split_evenly((1, 3));
    let titles = [
        ("CPU-seconds per million events", "CPU s"),
        ("MiB per 10,000 held connections", "MiB"),
        ("bytes on the wire per event", "bytes"),
    ];
    let short: Vec<String> = all
        .iter()
        .map(|s| {
            if runs.len() == 1 {
                s.model.to_string()
            } else {
                let i = runs
                    .iter()
                    .position(|r| std::ptr::eq(r, s.run))
                    .unwrap_or(0);
                format!("{} #{}", s.model, i + 1)
            }
        })
        .collect();
    for (p, (panel, (title, unit))) in panels.iter().zip(titles).enumerate() {
        let bars: Vec<Bar> = all
            .iter()
            .map(|s| {
                let (generator, target, missing) = costs(s.run, s.model)[p];
                Bar {
                    generator,
                    target,
                    missing,
                }
            })
            .collect();
        let y_max = bars
            .iter()
            .map(|b| b.generator + b.target)
            .fold(0.0, f64::max)
            .max(1e-9)
            * 1.25;
        let n = bars.len().max(1);
        let x = KeyAxis {
            lo: 0.0,
            hi: n as f64,
            keys: (0..n)
                .map(|i| (i as f64 + 0.5, short.get(i).cloned().unwrap_or_default()))
                .collect(),
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(title, (FONT, 16))
            .margin(14)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(x.clone(), 0.0..y_max)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(unit)
            .x_label_formatter(&|v| x.label(*v))
            .y_label_formatter(&whole)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(err)?;
        for (i, (bar, s)) in bars.iter().zip(&all).enumerate() {
            let x0 = i as f64 + 0.2;
            let x1 = i as f64 + 0.8;
            if let Some(why) = bar.missing {
                // Short lines, so the reason fits above the empty bar.
                let mut lines = vec![String::from("n/a:")];
                for word in why.split(' ') {
                    let last = lines.last_mut().expect("starts with one line");
                    if last.len() + word.len() < 16 {
                        last.push(' ');
                        last.push_str(word);
                    } else {
                        lines.push(word.to_string());
                    }
                }
                let n_lines = lines.len();
                chart
                    .draw_series(lines.into_iter().enumerate().map(|(k, line)| {
                        Text::new(
                            line,
                            (x0, y_max * (0.06 + 0.06 * (n_lines - 1 - k) as f64)),
                            (FONT, 13).into_font().color(&RGBColor(110, 110, 110)),
                        )
                    }))
                    .map_err(err)?;
                continue;
            }
            let total = bar.generator + bar.target;
            chart
                .draw_series([
                    Rectangle::new([(x0, 0.0), (x1, bar.generator)], s.color.filled()),
                    Rectangle::new(
                        [(x0, bar.generator), (x1, total)],
                        s.color.mix(0.4).filled(),
                    ),
                ])
                .map_err(err)?;
            let label = if total >= 100.0 {
                format!("{total:.0}")
            } else {
                format!("{total:.2}")
            };
            chart
                .draw_series(std::iter::once(Text::new(
                    label,
                    (x0 + 0.1, total + y_max * 0.03),
                    (FONT, 14),
                )))
                .map_err(err)?;
        }
    }
    let (w, h) = area.dim_in_pixel();
    let mut note = "dark: generator (pushbench), light: target (receiver or server)".to_string();
    if runs.len() > 1 {
        for (i, r) in runs.iter().enumerate() {
            note += &format!("   #{} = {}", i + 1, r.label);
        }
    }
    let _ = w;
    area.draw(&Text::new(
        note,
        (14, h as i32 - 18),
        (FONT, 13).into_font().color(&RGBColor(80, 80, 80)),
    ))
    .map_err(err)
}
