//! Reading a saved results directory back: `summary.json`, `timeseries.csv`, each model's
//! `.hlog` (histograms merged per tag, never percentiles) and the `scenario.toml` copy.
//! Everything the report draws comes from here, so a report made right after a run and one made
//! a month later from the same directory are the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::Histogram;

use crate::model_kind::ModelKind;
use crate::record::hist::{decode_hist, new_hist};
use crate::record::results::{Summary, TimeseriesRow};

/// Why a results directory could not be read or a report written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file the report needs is missing or unreadable.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file is there but does not parse.
    #[error("{path} is not a pushbench results file: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Writing an output file failed.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Drawing a chart failed.
    #[error("cannot draw the {chart} chart: {reason}")]
    Draw {
        /// Which chart.
        chart: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// One model's histograms from its `.hlog`, merged over every interval, by tag
/// (`latency`, `uncorrected_latency`, `ack_latency`, `connect`, `pong_rtt`).
#[derive(Debug, Clone, Default)]
pub struct ModelHists {
    /// Tag -> merged histogram.
    pub by_tag: BTreeMap<String, Histogram<u64>>,
    /// Tag -> each interval's recorded values as sorted (value, count) pairs: what `compare`
    /// resamples to tell a real change from run-to-run noise. Sparse, so a long run stays small.
    pub intervals: BTreeMap<String, Vec<Vec<(u64, u64)>>>,
}

impl ModelHists {
    /// The merged histogram for `tag`, if the log had any value for it.
    pub fn get(&self, tag: &str) -> Option<&Histogram<u64>> {
        self.by_tag.get(tag).filter(|h| !h.is_empty())
    }
}

/// Everything one results directory holds.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The directory.
    pub dir: PathBuf,
    /// How charts and tables name this run when several are overlaid: scenario and start time.
    pub label: String,
    /// `summary.json`.
    pub summary: Summary,
    /// `timeseries.csv`, in file order.
    pub timeseries: Vec<TimeseriesRow>,
    /// Model name -> its histograms.
    pub hists: BTreeMap<ModelKind, ModelHists>,
    /// `scenario.toml`, when the run saved it.
    pub scenario_text: Option<String>,
}

impl RunData {
    /// The time-series rows of one model.
    pub fn series(&self, model: ModelKind) -> impl Iterator<Item = &TimeseriesRow> + '_ {
        self.timeseries.iter().filter(move |r| r.model == model)
    }

    /// A model's merged histogram for `tag`.
    pub fn hist(&self, model: ModelKind, tag: &str) -> Option<&Histogram<u64>> {
        self.hists.get(&model).and_then(|h| h.get(tag))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ReportError> {
    std::fs::read(path).map_err(|e| ReportError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Reads a results directory.
pub fn load(dir: &Path) -> Result<RunData, ReportError> {
    let summary_path = dir.join("summary.json");
    let summary: Summary =
        serde_json::from_slice(&read(&summary_path)?).map_err(|e| ReportError::Parse {
            path: summary_path.clone(),
            reason: e.to_string(),
        })?;

    let ts_path = dir.join("timeseries.csv");
    let mut timeseries = Vec::new();
    let bytes = read(&ts_path)?;
    for row in csv::Reader::from_reader(bytes.as_slice()).deserialize() {
        timeseries.push(row.map_err(|e| ReportError::Parse {
            path: ts_path.clone(),
            reason: e.to_string(),
        })?);
    }

    let mut hists = BTreeMap::new();
    for m in &summary.models {
        let path = dir.join(format!("{}.hlog", m.model));
        // A run cut short before its first interval has no log; the charts show what exists.
        let merged = match std::fs::read(&path) {
            Ok(bytes) => read_hlog(&path, &bytes)?,
            Err(_) => ModelHists::default(),
        };
        hists.insert(m.model, merged);
    }

    let scenario_text = std::fs::read_to_string(dir.join("scenario.toml")).ok();
    let time = summary
        .started_at
        .get(11..19)
        .map_or(String::new(), |t| format!(" {t}Z"));
    let date = summary.started_at.get(..10).unwrap_or("");
    Ok(RunData {
        dir: dir.to_path_buf(),
        label: format!("{} {date}{time}", summary.scenario),
        summary,
        timeseries,
        hists,
        scenario_text,
    })
}

/// Merges every interval of an `.hlog` by tag.
fn read_hlog(path: &Path, bytes: &[u8]) -> Result<ModelHists, ReportError> {
    let mut out = ModelHists::default();
    let bad = |reason: String| ReportError::Parse {
        path: path.to_path_buf(),
        reason,
    };
    for entry in IntervalLogIterator::new(bytes) {
        let LogEntry::Interval(interval) = entry.map_err(|e| bad(format!("{e:?}")))? else {
            continue;
        };
        let tag = interval.tag().map_or("", |t| t.as_str()).to_string();
        let h = decode_hist(interval.encoded_histogram()).map_err(bad)?;
        let sparse = h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect();
        out.intervals.entry(tag.clone()).or_default().push(sparse);
        let merged = out.by_tag.entry(tag).or_insert_with(new_hist);
        merged
            .add(&h)
            .map_err(|e| bad(format!("histogram out of range: {e:?}")))?;
    }
    Ok(out)
}

/// Labels that tell runs apart: the scenario name and start time, with the directory name added
/// when two runs would otherwise read the same.
pub fn distinct_labels(runs: &mut [RunData]) {
    let clashes: Vec<bool> = (0..runs.len())
        .map(|i| (0..runs.len()).any(|j| j != i && runs[j].label == runs[i].label))
        .collect();
    for (run, clash) in runs.iter_mut().zip(clashes) {
        if clash {
            let name = run
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            run.label = format!("{} ({name})", run.label);
        }
    }
}
