//! The faults chart: retries, abandoned deliveries and reconnects per interval (how a retry or
//! reconnect storm unfolds), and the histogram of attempts each webhook delivery took.

use plotters::prelude::*;

use super::chart_kit::{
    err, legend, line, no_data, series, time_axes, whole, Area, DrawResult, FONT,
};
use super::load::RunData;
use crate::model_kind::ModelKind;

/// Both panels.
pub(super) fn faults<DB: DrawingBackend>(area: &Area<DB>, runs: &[RunData]) -> DrawResult {
    let (top, bottom) = area.split_vertically(area.dim_in_pixel().1 / 2);
    over_time(&top, runs)?;
    attempts(&bottom, runs)
}

fn over_time<DB: DrawingBackend>(area: &Area<DB>, runs: &[RunData]) -> DrawResult {
    let all = series(runs);
    let y_values = all
        .iter()
        .flat_map(|s| s.rows().map(|r| r.retries.max(r.abandoned) as f64));
    let mut chart = time_axes(
        area,
        runs,
        "per 1 s interval; webhook: retries (solid) and abandoned after 410 (dashed); WebSocket: reconnects",
        "per interval",
        y_values,
    )?;
    for s in &all {
        let color = s.color;
        let what = if s.model != ModelKind::Webhook {
            "reconnects"
        } else {
            "retries"
        };
        let retries = s.points(|r| r.retries as f64);
        let label = format!("{} {what}", s.name);
        line(&mut chart, retries, color, 2, false, label)?;
        if s.rows().any(|r| r.abandoned > 0) {
            let abandoned = s.points(|r| r.abandoned as f64);
            let label = format!("{} abandoned (410)", s.name);
            line(&mut chart, abandoned, color, 2, true, label)?;
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

fn attempts<DB: DrawingBackend>(area: &Area<DB>, runs: &[RunData]) -> DrawResult {
    let bars: Vec<_> = series(runs)
        .into_iter()
        .filter_map(|s| {
            let m = s.run.summary.models.iter().find(|m| m.model == s.model)?;
            (m.fleet().is_none() && m.attempts_histogram.iter().any(|n| *n > 0))
                .then(|| (s, m.attempts_histogram.clone()))
        })
        .collect();
    if bars.is_empty() {
        return no_data(area, "no webhook attempt counts in these results");
    }
    let max_attempts = bars
        .iter()
        .flat_map(|(_, h)| h.iter().rposition(|n| *n > 0))
        .max()
        .unwrap_or(1)
        .max(1);
    let y_max = bars
        .iter()
        .flat_map(|(_, h)| h.iter().copied())
        .max()
        .unwrap_or(1) as f64
        * 3.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            "webhook deliveries by the number of attempts they took (1 = first try)",
            (FONT, 15),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.5..max_attempts as f64 + 0.5, (0.8..y_max).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(max_attempts.min(16))
        .x_desc("attempts")
        .x_label_formatter(&whole)
        .y_desc("deliveries (log scale)")
        .y_label_formatter(&whole)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    let width = 0.8 / bars.len() as f64;
    for (k, (s, histogram)) in bars.iter().enumerate() {
        let color = s.color;
        let x_off = -0.4 + width * k as f64;
        chart
            .draw_series(
                histogram
                    .iter()
                    .enumerate()
                    .filter(|(n, count)| *n > 0 && **count > 0)
                    .map(|(n, count)| {
                        let x = n as f64 + x_off;
                        Rectangle::new([(x, 0.8), (x + width, *count as f64)], color.filled())
                    }),
            )
            .map_err(err)?
            .label(s.name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}
