//! What a capacity search reports: the step lines it prints as it goes, the table at the end,
//! and `capacity.json`, `capacity.csv` and the latency-vs-load chart.

use std::path::{Path, PathBuf};

use super::load::ReportError;
use crate::capacity::result::{fmt_load, CapacityResult, StepRecord};
use crate::slo::Slo;

/// One step as a line of progress.
pub fn step_line(r: &StepRecord) -> String {
    let verdict = if r.pass { "pass" } else { "FAIL" };
    let broken: Vec<&str> = r
        .verdicts
        .iter()
        .filter(|v| !v.pass)
        .map(|v| v.clause.as_str())
        .collect();
    let why = match (&r.error, broken.is_empty()) {
        (Some(e), _) => format!(" ({e})"),
        (None, false) => format!(" (broke: {})", broken.join(", ")),
        (None, true) => String::new(),
    };
    format!(
        "p50 {}  p99 {}  p99.9 {}  failed {}/{}  late {}  gen CPU {:.2}  -> {verdict}{why}",
        crate::units::fmt_us(r.p50_us),
        crate::units::fmt_us(r.p99_us),
        crate::units::fmt_us(r.p999_us),
        r.failed,
        r.events,
        r.late_sends,
        r.load_figures.gen_cpu_cores,
    )
}

/// The table printed at the end (the caller prints `results: DIR` after it).
pub fn render_table(r: &CapacityResult) -> String {
    use std::fmt::Write;
    let fmt_us = crate::units::fmt_us;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "capacity of {} ({}), objective: {}",
        r.model, r.scenario, r.slo
    );
    let _ = writeln!(
        s,
        "{:>4}  {:<6}  {:>12}  {:>9}  {:>9}  {:>9}  {:>8}  {:>7}  {:>7}  result",
        "step", "phase", r.unit, "p50", "p99", "p99.9", "failed", "late", "gen CPU"
    );
    for st in &r.steps {
        let failed_pct = if st.events > 0 {
            format!("{:.2}%", st.failed as f64 * 100.0 / st.events as f64)
        } else {
            "-".into()
        };
        let _ = writeln!(
            s,
            "{:>4}  {:<6}  {:>12}  {:>9}  {:>9}  {:>9}  {:>8}  {:>6.1}%  {:>7.2}  {}",
            st.step,
            st.phase,
            fmt_load(st.load),
            fmt_us(st.p50_us),
            fmt_us(st.p99_us),
            fmt_us(st.p999_us),
            failed_pct,
            st.load_figures.late_share * 100.0,
            st.load_figures.gen_cpu_cores,
            match (&st.error, st.pass) {
                (Some(_), _) => "cut short",
                (None, true) => "pass",
                (None, false) => "FAIL",
            }
        );
    }
    match r.max_load {
        Some(max) => {
            let _ = write!(s, "max load: {} {}", fmt_load(max), r.unit);
        }
        None => {
            let _ = write!(s, "max load: none (no step held the objective)");
        }
    }
    match r.first_failing_load {
        Some(f) => {
            let _ = writeln!(s, " (first failing: {} {})", fmt_load(f), r.unit);
        }
        None => s.push('\n'),
    }
    let _ = writeln!(s, "bottleneck: {}: {}", r.bottleneck.name(), r.message);
    let _ = writeln!(s, "search stopped: {}", r.stopped.describe());
    s
}

/// `capacity.json`, `capacity.csv`, `capacity.svg` and `capacity.png`.
/// Writes `capacity.json`, `capacity.csv` and the latency-vs-load chart into `dir`.
pub fn write_files(dir: &Path, r: &CapacityResult, slo: &Slo) -> Result<(), ReportError> {
    let fail = |path: PathBuf, e: &dyn std::fmt::Display| ReportError::Write {
        path,
        reason: e.to_string(),
    };
    let json = dir.join("capacity.json");
    let text = serde_json::to_string_pretty(r).expect("the result serializes");
    std::fs::write(&json, text + "\n").map_err(|e| fail(json.clone(), &e))?;

    let csv_path = dir.join("capacity.csv");
    let write_csv = || -> Result<(), csv::Error> {
        let mut w = csv::Writer::from_path(&csv_path)?;
        w.write_record([
            "step",
            "phase",
            "load",
            "unit",
            "pass",
            "p50_us",
            "p99_us",
            "p999_us",
            "events",
            "failed",
            "achieved_rate",
            "connections_peak",
            "late_sends",
            "schedule_lag_p99_us",
            "gen_cpu_cores",
            "target_cpu_cores",
            "pool_occupancy",
            "dir",
            "error",
        ])?;
        for s in &r.steps {
            let f = &s.load_figures;
            w.write_record([
                s.step.to_string(),
                s.phase.clone(),
                fmt_load(s.load),
                r.unit.clone(),
                s.pass.to_string(),
                s.p50_us.to_string(),
                s.p99_us.to_string(),
                s.p999_us.to_string(),
                s.events.to_string(),
                s.failed.to_string(),
                format!("{:.1}", s.achieved_rate),
                s.connections_peak.to_string(),
                s.late_sends.to_string(),
                format!("{:.0}", f.lag_p99_us),
                format!("{:.3}", f.gen_cpu_cores),
                f.target_cpu_cores
                    .map_or(String::new(), |c| format!("{c:.3}")),
                f.pool_occupancy
                    .map_or(String::new(), |o| format!("{o:.3}")),
                s.dir.clone(),
                s.error.clone().unwrap_or_default(),
            ])?;
        }
        w.flush()?;
        Ok(())
    };
    write_csv().map_err(|e| fail(csv_path.clone(), &e))?;
    super::capacity_charts::capacity_chart(r, slo, dir).map_err(|reason| ReportError::Draw {
        chart: "capacity",
        reason,
    })?;
    Ok(())
}
