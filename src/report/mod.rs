//! Reporting: what the user reads after a run, built from the saved results only, so `run` and a
//! later `pushbench report DIR...` produce the same files.
//!
//! - `load`: reads a results directory back (summary, time series, `.hlog` histograms).
//! - `table`: the comparison table (terminal and HTML).
//! - `charts`: the run charts, SVG and PNG (with `faults` and `cost`, a file each).
//! - `chart_kit`: the drawing toolkit every chart shares: render, font, colours, axes, legends.
//! - `html`: the self-contained `report.html` and its verdict.
//! - `capacity_charts`: the charts of the `capacity` and `sweep` commands.

pub mod capacity;
pub mod capacity_charts;
mod chart_kit;
pub mod charts;
pub mod cost;
pub mod faults;
pub mod html;
pub mod junit;
pub mod load;
pub mod table;

use std::path::{Path, PathBuf};

use crate::record::results::{percentile_rows, percentiles_writer, summary_table};
pub use load::ReportError;

/// Tags written to `percentiles.csv`, in order.
const TAGS: [&str; 6] = [
    "latency",
    "uncorrected_latency",
    "ack_latency",
    "connect",
    "tls_handshake",
    "pong_rtt",
];

/// Reads a command's saved result (`capacity.json`, `sweep.json`) from `dir`, and prepares
/// `out` to render it into.
pub fn read_saved<T: serde::de::DeserializeOwned>(
    dir: &Path,
    file: &str,
    out: &Path,
) -> Result<T, ReportError> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| ReportError::Read {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    let saved = serde_json::from_str(&text).map_err(|e| ReportError::Parse {
        path,
        reason: e.to_string(),
    })?;
    std::fs::create_dir_all(out).map_err(|e| ReportError::Write {
        path: out.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(saved)
}

/// Renders each run a capacity search or a sweep made (`dir/<name>` into `out/<name>`), where
/// its results are there.
pub fn render_runs<'a>(
    dir: &Path,
    out: &Path,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), ReportError> {
    for name in names {
        let run = dir.join(name);
        if run.join("summary.json").is_file() {
            render(std::slice::from_ref(&run), &out.join(name))?;
        }
    }
    Ok(())
}

/// Renders the CSVs, every chart and `report.html` of the results in `dirs` into `out`; several
/// directories are overlaid, each run labelled by its scenario name and start time. Returns the
/// path of `report.html`.
pub fn render(dirs: &[PathBuf], out: &Path) -> Result<PathBuf, ReportError> {
    let mut runs = dirs
        .iter()
        .map(|d| load::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    load::distinct_labels(&mut runs);
    let write_err = |path: &Path, e: &dyn std::fmt::Display| ReportError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(out).map_err(|e| write_err(out, &e))?;
    write_csvs(&runs, out)?;
    let charts = charts::render_all(&runs, out)?;
    let path = out.join("report.html");
    std::fs::write(&path, html::page(&runs, &charts)).map_err(|e| write_err(&path, &e))?;
    Ok(path)
}

/// `summary.csv` and `percentiles.csv` from the summary and the histograms (with a leading `run`
/// column when several runs are overlaid), and, into a directory other than the run's own, copies
/// of the files that are the source (summary.json, timeseries.csv, the .hlog files, scenario).
fn write_csvs(runs: &[load::RunData], out: &Path) -> Result<(), ReportError> {
    let overlay = runs.len() > 1;
    let failed = |name: &str, e: &dyn std::fmt::Display| ReportError::Write {
        path: out.join(name),
        reason: e.to_string(),
    };

    let mut w =
        csv::Writer::from_path(out.join("summary.csv")).map_err(|e| failed("summary.csv", &e))?;
    for (i, run) in runs.iter().enumerate() {
        let (header, rows) = summary_table(&run.summary);
        let prefix = |mut v: Vec<String>, first: &str| {
            if overlay {
                v.insert(0, first.to_string());
            }
            v
        };
        if i == 0 {
            w.write_record(prefix(header, "run"))
                .map_err(|e| failed("summary.csv", &e))?;
        }
        for row in rows {
            w.write_record(prefix(row, &run.label))
                .map_err(|e| failed("summary.csv", &e))?;
        }
    }
    w.flush().map_err(|e| failed("summary.csv", &e))?;

    if overlay {
        let mut w = csv::Writer::from_path(out.join("percentiles.csv"))
            .map_err(|e| failed("percentiles.csv", &e))?;
        w.write_record(["run", "model", "metric", "quantile", "value_us", "count"])
            .map_err(|e| failed("percentiles.csv", &e))?;
        for run in runs {
            for (model, hists) in &run.hists {
                for tag in TAGS {
                    let Some(h) = hists.get(tag) else { continue };
                    for v in h.iter_quantiles(5) {
                        w.write_record([
                            run.label.as_str(),
                            model.name(),
                            tag,
                            &format!("{:.6}", v.quantile_iterated_to()),
                            &v.value_iterated_to().to_string(),
                            &v.count_since_last_iteration().to_string(),
                        ])
                        .map_err(|e| failed("percentiles.csv", &e))?;
                    }
                }
            }
        }
        w.flush().map_err(|e| failed("percentiles.csv", &e))?;
        return Ok(());
    }

    let run = &runs[0];
    let mut w = percentiles_writer(out).map_err(|e| failed("percentiles.csv", &e))?;
    for (model, hists) in &run.hists {
        for tag in TAGS {
            if let Some(h) = hists.get(tag) {
                percentile_rows(&mut w, *model, tag, h)
                    .map_err(|e| failed("percentiles.csv", &e))?;
            }
        }
    }
    w.flush().map_err(|e| failed("percentiles.csv", &e))?;
    let same_dir = match (run.dir.canonicalize(), out.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same_dir {
        let mut names = vec![
            "summary.json".to_string(),
            "timeseries.csv".into(),
            "scenario.toml".into(),
        ];
        names.extend(run.hists.keys().map(|m| format!("{m}.hlog")));
        for name in names {
            let from = run.dir.join(&name);
            if from.exists() {
                std::fs::copy(&from, out.join(&name)).map_err(|e| failed(&name, &e))?;
            }
        }
    }
    Ok(())
}
