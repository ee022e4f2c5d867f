//! Live progress of a model's run: a bar on a terminal, a plain line every 5 s otherwise, off
//! when asked.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use super::context::ProgressMode;
use crate::model_kind::ModelKind;
use crate::record::results::TimeseriesRow;

/// Live progress: a bar on a terminal, otherwise a plain line for the first interval and then
/// every 5 s.
pub struct Progress {
    bar: Option<ProgressBar>,
    mode: ProgressMode,
    model: ModelKind,
    /// When the last plain line was printed; `None` before the first.
    last_plain_s: Option<f64>,
}

impl Progress {
    /// Starts showing progress for a run of `total_s` seconds.
    pub fn new(mode: ProgressMode, total_s: f64, model: ModelKind) -> Self {
        let bar = (mode == ProgressMode::Auto && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total_s.ceil() as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:20}] {pos:>3}/{len}s {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(model.name());
            bar
        });
        Self {
            bar,
            mode,
            model,
            last_plain_s: None,
        }
    }

    /// Shows one closed interval: its time-series row (the model's own count of errors and
    /// its headline latency), the backlog at its end, and the deliveries measured so far.
    pub fn update(&mut self, t_s: f64, row: &TimeseriesRow, backlog: u64, delivered: u64) {
        let msg = format!(
            "{}/s  latency p99 {}  {} err  {} queued  {} ok",
            row.sent,
            crate::units::fmt_us(row.p99_us),
            row.errors,
            backlog,
            delivered,
        );
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                bar.set_position(t_s.floor() as u64);
                bar.set_message(msg);
            }
            (None, ProgressMode::Off) => {}
            (None, _) => {
                // The first interval at once (the run is under way), then every 5 s.
                if self.last_plain_s.is_none_or(|last| t_s - last >= 5.0) {
                    eprintln!("[{t_s:>5.1}s] {}: {msg}", self.model);
                    self.last_plain_s = Some(t_s);
                }
            }
        }
    }

    /// Prints a note above the bar.
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None if self.mode != ProgressMode::Off => eprintln!("{text}"),
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
