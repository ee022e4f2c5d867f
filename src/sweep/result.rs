//! What a sweep found, as `sweep.json` and `sweep.csv` hold it: one row per value per model,
//! and where the models' cost lines cross. Read by the sweep, its charts and `report`.

use serde::{Deserialize, Serialize};

use crate::model_kind::ModelKind;

/// One model in one run, as `sweep.csv` holds it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// The key's value, as written.
    pub value: String,
    /// The value as a number, when it is one (the charts' x axis).
    pub x: Option<f64>,
    /// `webhook` or `websocket`.
    pub model: ModelKind,
    /// The run's directory, relative to the command's.
    pub dir: String,
    /// Delivery latency.
    pub p50_us: u64,
    /// Delivery latency.
    pub p99_us: u64,
    /// Deliveries scheduled in the measured part.
    pub events: u64,
    /// Acknowledged.
    pub delivered: u64,
    /// Failed.
    pub failed: u64,
    /// Deliveries per second acknowledged.
    pub achieved_rate: f64,
    /// Generator CPU-seconds.
    pub gen_cpu_s: f64,
    /// Target CPU-seconds (0 when not measured apart).
    pub target_cpu_s: f64,
    /// Generator plus target CPU-seconds per million delivered events.
    pub cpu_s_per_million_events: f64,
    /// Generator plus target peak RSS.
    pub memory_bytes: u64,
    /// Connections held at most.
    pub connections_peak: u64,
    /// Deliveries per subscriber per minute: the scale-free form of the workload.
    pub events_per_subscriber_per_min: f64,
}

/// Where two models' cost lines cross.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Crossover {
    /// `cpu_s_per_million_events` or `memory_bytes`.
    pub metric: String,
    /// Interpolated key value of the crossing.
    pub at: f64,
    /// The two values it lies between.
    pub between: (f64, f64),
    /// Interpolated deliveries per subscriber per minute at the crossing.
    pub events_per_subscriber_per_min: f64,
    /// The model cheaper below the crossing.
    pub cheaper_below: String,
    /// The model cheaper above it.
    pub cheaper_above: String,
    /// The sentence the report prints.
    pub message: String,
}

/// `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// Scenario name.
    pub scenario: String,
    /// The key swept.
    pub key: String,
    /// Its values, in the order run.
    pub values: Vec<String>,
    /// One row per value per model.
    pub rows: Vec<SweepRow>,
    /// Cost crossovers found (none when one model is cheaper throughout, or one model ran).
    pub crossovers: Vec<Crossover>,
    /// Cost comparisons where no line crossed, in plain words.
    pub notes: Vec<String>,
    /// UTC start, RFC 3339.
    pub started_at: String,
}

/// A key value as a short figure.
pub fn fmt_x(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .into()
    }
}
