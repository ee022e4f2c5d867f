//! What a capacity search found, as `capacity.json` holds it: every step and the verdict. Read
//! by the search, by its report (table, CSV, chart) and by `report` re-rendering a directory.

use serde::{Deserialize, Serialize};

use super::bottleneck::{Bottleneck, StepLoad};
use super::search::Stop;
use crate::model_kind::ModelKind;
use crate::slo::Verdict;

/// One step as `capacity.json` and `capacity.csv` hold it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based.
    pub step: usize,
    /// `"step"` (geometric) or `"bisect"`.
    pub phase: String,
    /// Offered load, in the search's unit.
    pub load: f64,
    /// Whether every clause of the objective held (and the run completed).
    pub pass: bool,
    /// Each clause's verdict.
    pub verdicts: Vec<Verdict>,
    /// Its results directory, relative to the command's.
    pub dir: String,
    /// Delivery latency (connect latency when the load is connections).
    pub p50_us: u64,
    /// The same, p99.
    pub p99_us: u64,
    /// The same, p99.9.
    pub p999_us: u64,
    /// Deliveries scheduled in the measured part (connections, in idle mode).
    pub events: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Deliveries acknowledged per second.
    pub achieved_rate: f64,
    /// Connections held at most.
    pub connections_peak: u64,
    /// First sends more than 1 ms late.
    pub late_sends: u64,
    /// What tells generator from target.
    pub load_figures: StepLoad,
    /// Why the step could not finish, if it could not.
    pub error: Option<String>,
}

/// `capacity.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityResult {
    /// Scenario name.
    pub scenario: String,
    /// Model searched.
    pub model: ModelKind,
    /// `"events/s"` or `"connections"`.
    pub unit: String,
    /// The objective, as written.
    pub slo: String,
    /// Highest load that held the objective (`null`: none did).
    pub max_load: Option<f64>,
    /// Lowest load that broke it.
    pub first_failing_load: Option<f64>,
    /// Who limited the load at the first failing step.
    pub bottleneck: Bottleneck,
    /// Why, in plain words.
    pub message: String,
    /// Why the search stopped.
    pub stopped: Stop,
    /// UTC start, RFC 3339.
    pub started_at: String,
    /// Every step in the order run.
    pub steps: Vec<StepRecord>,
}

/// A load as a short figure: whole numbers without decimals.
pub fn fmt_load(load: f64) -> String {
    if load.fract() == 0.0 {
        format!("{load:.0}")
    } else {
        format!("{load:.1}")
    }
}
