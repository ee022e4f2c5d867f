//! `pushbench sweep`: one run per value of one scenario key (`--set KEY=V1,V2,...`), and the
//! two models' latency and cost against that key. Where the models' cost lines cross, the
//! report says so: that crossover ("below N events per subscriber per minute, webhooks are
//! cheaper") is what an architecture comparison is for.
//!
//! Every value is applied and validated before the first run, so a bad key or value stops the
//! command with the key named and nothing run. Each run writes its own results directory
//! `<out>/run-NN-VALUE/`; the command writes `sweep.json`, `sweep.csv` and `sweep_*.svg/png`.

pub mod result;

pub use result::{fmt_x, Crossover, SweepResult, SweepRow};

use std::path::{Path, PathBuf};

use crate::model_kind::ModelKind;
use crate::overrides::{self, Assignment};
use crate::record::results::{utc_stamps, ModelSummary};
use crate::report::ReportError;
use crate::run::{self, RunError, RunOptions};
use crate::scenario::{Scenario, ScenarioError};

/// What stops `sweep` before or between its runs.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A value makes the scenario invalid (exit 2, nothing ran).
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// The output directory cannot be written (exit 2).
    #[error("cannot write results to {path}: {reason}")]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A run could not go on (exit 3); the runs before it are in the directory.
    #[error("the run with {run} failed: {error}")]
    Run {
        /// Which value.
        run: String,
        /// What stopped it.
        error: RunError,
    },
    /// Writing `sweep.*` failed (exit 3).
    #[error("{0}")]
    Report(#[from] ReportError),
}

/// What `sweep` hands back to `main`.
#[derive(Debug)]
pub struct SweepOutcome {
    /// The command's directory.
    pub dir: PathBuf,
    /// What `sweep.json` holds.
    pub result: SweepResult,
    /// Ctrl-C stopped it.
    pub interrupted: bool,
    /// The run error that stopped it, naming the run (a [`SweepError::Run`], exit 3); the
    /// results so far are written.
    pub error: Option<SweepError>,
    /// Runs whose scenario thresholds failed (exit 1).
    pub thresholds_failed: Vec<String>,
}

/// A crossing of two lines sampled at the same points: the segment it lies in, the
/// interpolated x, and whether line `a` is the lower one below it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    /// Index of the point below the crossing (the crossing lies in `[i, i + 1]`).
    pub segment: usize,
    /// Fraction of the way from point `segment` to the next.
    pub fraction: f64,
    /// Interpolated x.
    pub x: f64,
    /// Line `a` is lower (cheaper) below the crossing.
    pub a_lower_below: bool,
}

/// Finds where lines `a` and `b`, sampled at increasing `xs`, cross: strict changes of side,
/// where points closer than `tolerance` (a fraction of the larger value) count as ties, so run
/// to run noise between two equal costs is not reported as a crossing; a touch without a change
/// of sides is not one either. Pure.
pub fn crossings(xs: &[f64], a: &[f64], b: &[f64], tolerance: f64) -> Vec<Crossing> {
    let n = xs.len().min(a.len()).min(b.len());
    let d: Vec<f64> = (0..n)
        .map(|i| {
            let diff = a[i] - b[i];
            if diff.abs() <= tolerance * a[i].abs().max(b[i].abs()) {
                0.0
            } else {
                diff
            }
        })
        .collect();
    let mut out = Vec::new();
    // The last nonzero difference and where it was, so a run of exact ties is stepped over.
    let mut last: Option<usize> = None;
    for i in 0..n {
        if d[i] == 0.0 || !d[i].is_finite() {
            continue;
        }
        if let Some(j) = last {
            if d[j].signum() != d[i].signum() {
                // Between j and i: interpolate where the difference is zero.
                let fraction = d[j] / (d[j] - d[i]);
                let x = xs[j] + (xs[i] - xs[j]) * fraction;
                // Report it in the segment it falls in.
                let span = (i - j) as f64;
                let pos = fraction * span;
                let segment = j + (pos.floor() as usize).min(i - j - 1);
                out.push(Crossing {
                    segment,
                    fraction: pos - (segment - j) as f64,
                    x,
                    a_lower_below: d[j] < 0.0,
                });
            }
        }
        last = Some(i);
    }
    out
}

fn dir_safe(value: &str) -> String {
    let s: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() {
        "value".into()
    } else {
        s
    }
}

/// Every value applied and validated: nothing runs unless all of them are good.
pub fn prepare(
    scenario: &Scenario,
    assignment: &Assignment,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Scenario>, ScenarioError> {
    assignment
        .values
        .iter()
        .map(|v| overrides::apply(scenario, &assignment.key, v, env))
        .collect()
}

/// Runs the scenario once per value and writes the sweep's files.
pub async fn run_sweep(
    scenario: &Scenario,
    assignment: &Assignment,
    opts: &RunOptions,
) -> Result<SweepOutcome, SweepError> {
    let scenarios = prepare(scenario, assignment, &|name| std::env::var(name).ok())?;
    let started_s = crate::clock::real_ns() / 1_000_000_000;
    let (stamp, started_at) = utc_stamps(started_s);
    let dir = opts.results_dir(&format!("sweep-{}-{stamp}", scenario.name));
    std::fs::create_dir_all(&dir).map_err(|e| SweepError::OutDir {
        path: dir.clone(),
        reason: e.to_string(),
    })?;

    let mut rows = Vec::new();
    let mut interrupted = false;
    let mut error = None;
    let mut thresholds_failed = Vec::new();
    let total = scenarios.len();
    let ctrl_c = crate::run::CtrlCFlag::watch();
    for (i, (value, s)) in assignment.values.iter().zip(&scenarios).enumerate() {
        if ctrl_c.is_set() {
            interrupted = true;
            break;
        }
        let name = format!("run-{:02}-{}", i + 1, dir_safe(value));
        eprintln!("sweep: run {}/{total}: {}={value}", i + 1, assignment.key);
        let run_opts = RunOptions {
            out: Some(dir.join(&name)),
            ..opts.clone()
        };
        let report = match run::run(s, &run_opts).await {
            Ok(r) => r,
            Err(RunError::OutDir { path, reason }) => {
                return Err(SweepError::OutDir { path, reason })
            }
            Err(e) => {
                return Err(SweepError::Run {
                    run: format!("{}={value}", assignment.key),
                    error: e,
                })
            }
        };
        for m in &report.summary.models {
            rows.push(row(value, &name, m, s));
        }
        if !report.thresholds_pass() {
            thresholds_failed.push(format!("{}={value}", assignment.key));
        }
        if report.interrupted() {
            interrupted = true;
            break;
        }
        if let Some(e) = report.error {
            error = Some(SweepError::Run {
                run: format!("{}={value}", assignment.key),
                error: e,
            });
            break;
        }
    }
    let (crossovers, notes) = find_crossovers(&assignment.key, &rows);
    let result = SweepResult {
        scenario: scenario.name.clone(),
        key: assignment.key.clone(),
        values: assignment.values.clone(),
        rows,
        crossovers,
        notes,
        started_at,
    };
    write_files(&dir, &result)?;
    Ok(SweepOutcome {
        dir,
        result,
        interrupted,
        error,
        thresholds_failed,
    })
}

fn row(value: &str, dir: &str, m: &ModelSummary, s: &Scenario) -> SweepRow {
    let cpu = m.resources.generator.cpu_s + m.resources.target.cpu_s;
    let w = &s.workload;
    let rate = w.shape.peak_rate_per_sec().unwrap_or(m.achieved_rate);
    SweepRow {
        value: value.into(),
        x: value.trim().parse::<f64>().ok().filter(|v| v.is_finite()),
        model: m.model,
        dir: dir.into(),
        p50_us: m.latency_us.p50,
        p99_us: m.latency_us.p99,
        events: m.events,
        delivered: m.delivered,
        failed: m.failed,
        achieved_rate: m.achieved_rate,
        gen_cpu_s: m.resources.generator.cpu_s,
        target_cpu_s: m.resources.target.cpu_s,
        cpu_s_per_million_events: if m.delivered > 0 {
            cpu / m.delivered as f64 * 1e6
        } else {
            0.0
        },
        memory_bytes: m.resources.generator.peak_rss_bytes + m.resources.target.peak_rss_bytes,
        connections_peak: m.connections.peak,
        events_per_subscriber_per_min: rate * w.fanout as f64 * 60.0 / w.subscribers as f64,
    }
}

/// Costs closer than this (fraction of the larger) are a tie, not a side.
pub const TIE: f64 = 0.05;

/// The cost metrics compared for crossovers: (field, words).
const COSTS: [(&str, &str); 2] = [
    ("cpu_s_per_million_events", "CPU-seconds per million events"),
    ("memory_bytes", "memory (peak RSS, generator + target)"),
];

fn cost_of(r: &SweepRow, metric: &str) -> f64 {
    match metric {
        "cpu_s_per_million_events" => r.cpu_s_per_million_events,
        _ => r.memory_bytes as f64,
    }
}

/// Crossovers of every two models' cost lines over a numeric key (webhook and WebSocket,
/// WebSocket and long polling, ...), and a note for each cost where one is cheaper throughout.
fn find_crossovers(key: &str, rows: &[SweepRow]) -> (Vec<Crossover>, Vec<String>) {
    let pick = |model: ModelKind| -> Vec<&SweepRow> {
        let mut v: Vec<&SweepRow> = rows
            .iter()
            .filter(|r| r.model == model && r.x.is_some() && r.delivered > 0)
            .collect();
        v.sort_by(|a, b| a.x.unwrap_or(0.0).total_cmp(&b.x.unwrap_or(0.0)));
        v
    };
    let mut found = Vec::new();
    let mut notes = Vec::new();
    let models = ModelKind::ALL;
    for (i, &ma) in models.iter().enumerate() {
        for &mb in &models[i + 1..] {
            let (a_rows, b_rows) = (pick(ma), pick(mb));
            if a_rows.is_empty() || b_rows.is_empty() {
                continue;
            }
            crossovers_of(key, (ma, &a_rows), (mb, &b_rows), &mut found, &mut notes);
        }
    }
    (found, notes)
}

/// The crossovers of two models' cost lines (at the values both ran at).
fn crossovers_of(
    key: &str,
    (ma, a_rows): (ModelKind, &[&SweepRow]),
    (mb, b_rows): (ModelKind, &[&SweepRow]),
    found: &mut Vec<Crossover>,
    notes: &mut Vec<String>,
) {
    // Only values both models ran at can be compared.
    let pairs: Vec<(&SweepRow, &SweepRow)> = a_rows
        .iter()
        .filter_map(|h| b_rows.iter().find(|s| s.x == h.x).map(|s| (*h, *s)))
        .collect();
    if pairs.len() < 2 {
        notes.push(format!(
            "{ma} and {mb}: crossovers need at least two numeric values both models ran at"
        ));
        return;
    }
    let xs: Vec<f64> = pairs.iter().map(|p| p.0.x.unwrap_or(0.0)).collect();
    for (metric, words) in COSTS {
        let a: Vec<f64> = pairs.iter().map(|p| cost_of(p.0, metric)).collect();
        let b: Vec<f64> = pairs.iter().map(|p| cost_of(p.1, metric)).collect();
        let cs = crossings(&xs, &a, &b, TIE);
        if cs.is_empty() {
            let range = format!("{key} = {} to {}", fmt_x(xs[0]), fmt_x(xs[xs.len() - 1]));
            let clearly = |x: f64, y: f64| x < y && y - x > TIE * y;
            let note = if a.iter().zip(&b).all(|(x, y)| clearly(*x, *y)) {
                format!("{words}: no crossover of {ma} and {mb} from {range}; {ma} is cheaper throughout")
            } else if a.iter().zip(&b).all(|(x, y)| clearly(*y, *x)) {
                format!("{words}: no crossover of {ma} and {mb} from {range}; {mb} is cheaper throughout")
            } else {
                format!(
                    "{words}: no crossover of {ma} and {mb} from {range}; they are within {:.0}% of each other at some values",
                    TIE * 100.0
                )
            };
            notes.push(note);
        }
        for c in cs {
            let (lo, hi) = (pairs[c.segment], pairs[c.segment + 1]);
            let epm = lo.0.events_per_subscriber_per_min
                + (hi.0.events_per_subscriber_per_min - lo.0.events_per_subscriber_per_min)
                    * c.fraction;
            let (below, above) = if c.a_lower_below { (ma, mb) } else { (mb, ma) };
            let message = format!(
                "{words}: {ma} and {mb} cross at {key} ≈ {} (between {} and {}; about {:.1} events per subscriber per minute): below it {below} is cheaper, above it {above}",
                fmt_x(round_sig(c.x, 3)),
                fmt_x(lo.0.x.unwrap_or(0.0)),
                fmt_x(hi.0.x.unwrap_or(0.0)),
                epm
            );
            found.push(Crossover {
                metric: metric.into(),
                at: c.x,
                between: (lo.0.x.unwrap_or(0.0), hi.0.x.unwrap_or(0.0)),
                events_per_subscriber_per_min: epm,
                cheaper_below: below.to_string(),
                cheaper_above: above.to_string(),
                message,
            });
        }
    }
}

/// `x` rounded to `digits` significant digits (an interpolated crossing is no more exact).
pub fn round_sig(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// The table printed at the end (the caller prints `results: DIR` after it).
pub fn render_table(r: &SweepResult) -> String {
    use std::fmt::Write;
    let fmt_us = crate::report::table::fmt_us;
    let mut s = String::new();
    let _ = writeln!(s, "sweep of {} over {}", r.scenario, r.key);
    let _ = writeln!(
        s,
        "{:>12}  {:<9}  {:>9}  {:>9}  {:>14}  {:>11}  {:>11}  {:>9}",
        "value", "model", "p99", "failed", "CPU s / 1M ev", "memory", "connections", "ev/sub/min"
    );
    for row in &r.rows {
        let _ = writeln!(
            s,
            "{:>12}  {:<9}  {:>9}  {:>9}  {:>14.1}  {:>11}  {:>11}  {:>9.1}",
            row.value,
            row.model,
            fmt_us(row.p99_us),
            row.failed,
            row.cpu_s_per_million_events,
            crate::report::table::fmt_mib(row.memory_bytes),
            row.connections_peak,
            row.events_per_subscriber_per_min
        );
    }
    for c in &r.crossovers {
        let _ = writeln!(s, "crossover: {}", c.message);
    }
    for n in &r.notes {
        let _ = writeln!(s, "{n}");
    }
    s
}

/// Re-renders a `sweep` directory from its saved `sweep.json` into `out`: the JSON, the CSV,
/// the charts and each value's run report (`report` on a sweep directory).
pub fn rerender(dir: &Path, out: &Path) -> Result<SweepResult, ReportError> {
    let r: SweepResult = crate::report::read_saved(dir, "sweep.json", out)?;
    let mut runs: Vec<&str> = r.rows.iter().map(|row| row.dir.as_str()).collect();
    runs.dedup();
    crate::report::render_runs(dir, out, runs)?;
    write_files(out, &r)?;
    Ok(r)
}

fn write_files(dir: &Path, r: &SweepResult) -> Result<(), ReportError> {
    let fail = |path: PathBuf, e: &dyn std::fmt::Display| ReportError::Write {
        path,
        reason: e.to_string(),
    };
    let json = dir.join("sweep.json");
    let text = serde_json::to_string_pretty(r).expect("the result serializes");
    std::fs::write(&json, text + "\n").map_err(|e| fail(json.clone(), &e))?;
    let csv_path = dir.join("sweep.csv");
    let write_csv = || -> Result<(), csv::Error> {
        let mut w = csv::Writer::from_path(&csv_path)?;
        w.write_record([
            "key",
            "value",
            "model",
            "p50_us",
            "p99_us",
            "events",
            "delivered",
            "failed",
            "achieved_rate",
            "gen_cpu_s",
            "target_cpu_s",
            "cpu_s_per_million_events",
            "memory_bytes",
            "connections_peak",
            "events_per_subscriber_per_min",
            "dir",
        ])?;
        for row in &r.rows {
            w.write_record([
                r.key.clone(),
                row.value.clone(),
                row.model.to_string(),
                row.p50_us.to_string(),
                row.p99_us.to_string(),
                row.events.to_string(),
                row.delivered.to_string(),
                row.failed.to_string(),
                format!("{:.1}", row.achieved_rate),
                format!("{:.3}", row.gen_cpu_s),
                format!("{:.3}", row.target_cpu_s),
                format!("{:.2}", row.cpu_s_per_million_events),
                row.memory_bytes.to_string(),
                row.connections_peak.to_string(),
                format!("{:.3}", row.events_per_subscriber_per_min),
                row.dir.clone(),
            ])?;
        }
        w.flush()?;
        Ok(())
    };
    write_csv().map_err(|e| fail(csv_path.clone(), &e))?;
    crate::report::capacity_charts::sweep_charts(r, dir)
        .map_err(|e| fail(dir.join("sweep_*.svg"), &e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossings_are_found_and_interpolated() {
        let xs = [1.0, 10.0, 100.0, 1000.0];
        // Webhook cost grows with the rate, WebSocket cost falls.
        let a = [1.0, 2.0, 4.0, 8.0];
        let b = [6.0, 5.0, 3.0, 2.0];
        let c = crossings(&xs, &a, &b, 0.0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].segment, 1);
        assert!(c[0].a_lower_below);
        // d = -3 at 10, +1 at 100: zero three quarters of the way.
        assert!((c[0].x - 77.5).abs() < 1e-9, "{:?}", c[0]);
        assert!((c[0].fraction - 0.75).abs() < 1e-9);
    }

    #[test]
    fn no_crossing_when_one_line_stays_below_or_only_touches() {
        let xs = [1.0, 2.0, 3.0];
        assert!(crossings(&xs, &[1.0, 1.0, 1.0], &[2.0, 3.0, 4.0], 0.0).is_empty());
        // Touching at the middle point and going back is not a crossing.
        assert!(crossings(&xs, &[1.0, 3.0, 1.0], &[2.0, 3.0, 2.0], 0.0).is_empty());
        assert!(crossings(&[], &[], &[], 0.0).is_empty());
        assert!(crossings(&[1.0], &[1.0], &[2.0], 0.0).is_empty());
    }

    #[test]
    fn a_crossing_through_an_exact_tie_is_placed_at_the_tie() {
        let xs = [1.0, 2.0, 3.0];
        let c = crossings(&xs, &[1.0, 3.0, 5.0], &[2.0, 3.0, 4.0], 0.0);
        assert_eq!(c.len(), 1);
        assert!((c[0].x - 2.0).abs() < 1e-9, "{:?}", c[0]);
        assert!(c[0].a_lower_below);
    }

    #[test]
    fn two_crossings_both_reported_with_sides() {
        let xs = [0.0, 1.0, 2.0];
        let c = crossings(&xs, &[0.0, 2.0, 0.0], &[1.0, 1.0, 1.0], 0.0);
        assert_eq!(c.len(), 2);
        assert!(c[0].a_lower_below && !c[1].a_lower_below);
        assert!((c[0].x - 0.5).abs() < 1e-9 && (c[1].x - 1.5).abs() < 1e-9);
    }

    #[test]
    fn noise_within_the_tolerance_is_a_tie_not_a_crossing() {
        let xs = [100.0, 1000.0, 4000.0];
        // 743 vs 733 and 366 vs 382: within 5%, so the lines never clearly change sides.
        let a = [2033.0, 743.0, 366.0];
        let b = [5100.0, 733.0, 382.0];
        assert_eq!(crossings(&xs, &a, &b, 0.0).len(), 2);
        assert!(crossings(&xs, &a, &b, TIE).is_empty());
        // A real crossing through a tie is still found.
        let c = crossings(&xs, &a, &[5100.0, 740.0, 200.0], TIE);
        assert_eq!(c.len(), 1);
        assert!(
            c[0].a_lower_below && c[0].x > 100.0 && c[0].x < 4000.0,
            "{c:?}"
        );
    }

    #[test]
    fn the_report_names_the_cheaper_model_on_each_side() {
        let mk = |x: f64, model: &str, cpu: f64| SweepRow {
            value: fmt_x(x),
            x: Some(x),
            model: ModelKind::from_name(model).unwrap(),
            delivered: 1,
            cpu_s_per_million_events: cpu,
            memory_bytes: if model == "webhook" { 10 } else { 20 },
            events_per_subscriber_per_min: x * 60.0 / 1000.0,
            ..SweepRow::default()
        };
        let rows = vec![
            mk(100.0, "webhook", 10.0),
            mk(100.0, "websocket", 30.0),
            mk(1000.0, "webhook", 40.0),
            mk(1000.0, "websocket", 20.0),
        ];
        let (found, notes) = find_crossovers("workload.events_per_second", &rows);
        assert_eq!(found.len(), 1, "{found:?}");
        let c = &found[0];
        assert_eq!(
            (c.cheaper_below.as_str(), c.cheaper_above.as_str()),
            ("webhook", "websocket")
        );
        assert!((c.at - 550.0).abs() < 1e-9, "{c:?}");
        assert!(
            (c.events_per_subscriber_per_min - 33.0).abs() < 1e-9,
            "{c:?}"
        );
        assert!(
            c.message.contains("below it webhook is cheaper"),
            "{}",
            c.message
        );
        assert_eq!(notes.len(), 1, "memory never crosses: {notes:?}");
        assert!(
            notes[0].contains("webhook is cheaper throughout"),
            "{notes:?}"
        );

        // A third model: every pair is compared, each crossing named by its two models.
        let mut rows = rows;
        rows.push(mk(100.0, "longpoll", 35.0));
        rows.push(mk(1000.0, "longpoll", 25.0));
        let (found, notes) = find_crossovers("workload.events_per_second", &rows);
        let pairs: Vec<(&str, &str)> = found
            .iter()
            .map(|c| (c.cheaper_below.as_str(), c.cheaper_above.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [("webhook", "websocket"), ("webhook", "longpoll")],
            "{found:?}"
        );
        assert!(
            found[1].message.contains("webhook and longpoll cross at"),
            "{}",
            found[1].message
        );
        assert!(
            notes.iter().any(|n| n.contains("CPU")
                && n.contains("of websocket and longpoll")
                && n.contains("websocket is cheaper throughout")),
            "{notes:?}"
        );
    }
}
