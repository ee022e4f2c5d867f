//! `pushbench capacity`: the highest load a target holds an objective at.
//!
//! Each step is a short run of the scenario (one model, a constant rate or a connection count
//! set by editing its TOML, thresholds dropped: the objective replaces them) into its own
//! results directory `<out>/step-NN-LOAD/`. [`search`] decides the loads (geometric steps,
//! then bisection, bounded in count) and the driver bounds the time (`--max-time`).
//! [`bottleneck`] tells a target that gave out from a generator that could not keep up.
//! The command writes `capacity.json`, `capacity.csv` and the latency-vs-load chart.

pub mod bottleneck;
pub mod result;
pub mod search;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::model_kind::ModelKind;
use crate::overrides;
use crate::record::results::{utc_stamps, ModelSummary, TimeseriesRow};
pub use crate::report::capacity::render_table;
use crate::run::{self, RunError, RunOptions};
use crate::scenario::{Problem, Scenario, ScenarioError, WsMode};
use crate::slo::{Slo, Verdict};
pub use result::{fmt_load, CapacityResult, StepRecord};

use crate::report::capacity as report;
use crate::report::ReportError;

use bottleneck::{classify, Bottleneck, Diagnosis, StepLoad};
use search::{Search, SearchPlan, Stop};

/// What stops `capacity` before or between its runs.
#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    /// The scenario (or a step's edited version of it) is not valid (exit 2).
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// The options do not fit the scenario (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The output directory cannot be written (exit 2).
    #[error("cannot write results to {path}: {reason}")]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A step could not run at all, e.g. its target was unreachable (exit 3).
    #[error("step {step} could not run: {source}")]
    Run {
        /// The step's directory name.
        step: String,
        /// What stopped it.
        source: RunError,
    },
    /// Writing `capacity.*` or a step's report failed (exit 3).
    #[error("{0}")]
    Report(#[from] ReportError),
}

/// How `capacity` searches.
#[derive(Debug, Clone)]
pub struct CapacityOptions {
    /// The objective every step is judged by.
    pub slo: Slo,
    /// Which model; `None`: the one the scenario enables.
    pub model: Option<ModelKind>,
    /// Measured part of each step.
    pub step_duration_ns: u64,
    /// Warm-up of each step.
    pub step_warmup_ns: u64,
    /// First load; `None`: the scenario's rate (or subscribers, in idle mode).
    pub start: Option<f64>,
    /// Ratio between geometric steps.
    pub factor: f64,
    /// Most geometric steps.
    pub max_steps: usize,
    /// Most bisection steps.
    pub max_bisect: usize,
    /// Bisection resolution (fraction of the failing load).
    pub resolution: f64,
    /// No new step starts after this long.
    pub max_time_ns: u64,
    /// Where the steps' runs go (`out`, `results_root`, launch, progress).
    pub run: RunOptions,
}

/// What `capacity` hands back to `main`.
#[derive(Debug)]
pub struct CapacityOutcome {
    /// The command's directory.
    pub dir: PathBuf,
    /// What `capacity.json` holds.
    pub result: CapacityResult,
    /// Ctrl-C stopped it.
    pub interrupted: bool,
    /// The run error that stopped it (exit 3), results so far written.
    pub error: Option<RunError>,
}

/// The knob a search turns and how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Knob {
    Rate,
    Connections,
}

impl Knob {
    fn key(self) -> &'static str {
        match self {
            Knob::Rate => "workload.events_per_second",
            Knob::Connections => "workload.subscribers",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Knob::Rate => "events/s",
            Knob::Connections => "connections",
        }
    }
}

fn usage(message: String) -> CapacityError {
    CapacityError::Usage(message)
}

/// Picks the model and the knob, and checks the scenario can be stepped.
fn plan_model(
    scenario: &Scenario,
    choice: Option<ModelKind>,
) -> Result<(ModelKind, Knob), CapacityError> {
    let present: Vec<ModelKind> = ModelKind::ALL
        .into_iter()
        .filter(|m| scenario.enables(*m))
        .collect();
    let model = match (choice, present.as_slice()) {
        (Some(m), _) if !present.contains(&m) => {
            return Err(usage(format!(
                "--model {m}: the scenario has no [{m}] table"
            )))
        }
        (Some(m), _) => m,
        (None, []) => return Err(usage("the scenario enables no model".into())),
        (None, [m]) => *m,
        (None, many) => {
            let names: Vec<String> = many.iter().map(|m| format!("--model {m}")).collect();
            return Err(usage(format!(
                "the scenario enables {} models; choose one with {}",
                many.len(),
                names.join(" or ")
            )));
        }
    };
    let idle = scenario
        .push_fleet(model)
        .is_some_and(|w| w.mode == WsMode::Idle);
    if idle {
        return Ok((model, Knob::Connections));
    }
    if scenario.workload.shape.peak_rate_per_sec().is_none() {
        return Err(usage(
            "workload.shape = \"max\" is closed loop: it has no offered rate to step; give events_per_second".into(),
        ));
    }
    Ok((model, Knob::Rate))
}

/// The scenario text for one step: one model, no thresholds, short, at `load`.
fn step_scenario(
    scenario: &Scenario,
    model: ModelKind,
    knob: Knob,
    load: f64,
    opts: &CapacityOptions,
) -> Result<Scenario, CapacityError> {
    let edit_err = |e: overrides::OverrideError| ScenarioError {
        origin: scenario.name.clone(),
        problems: vec![Problem {
            line: None,
            key: String::new(),
            message: e.to_string(),
        }],
    };
    // Only the searched model runs: every other model's table goes.
    let mut text = scenario.source.clone();
    for other in ModelKind::ALL.into_iter().filter(|m| *m != model) {
        text = overrides::remove_key(&text, other.name()).map_err(edit_err)?;
    }
    text = overrides::remove_key(&text, "thresholds").map_err(edit_err)?;
    let shape_is_poisson = matches!(
        scenario.workload.shape,
        crate::schedule::Shape::Poisson { .. }
    );
    if knob == Knob::Rate && !shape_is_poisson {
        // A step is one constant rate, whatever shape the file has.
        text = overrides::remove_key(&text, "workload.shape").map_err(edit_err)?;
    }
    let mut pairs = vec![
        (
            "workload.duration",
            format!("{}us", opts.step_duration_ns / 1000),
        ),
        (
            "workload.warmup",
            format!("{}us", opts.step_warmup_ns / 1000),
        ),
        (knob.key(), format!("{load}")),
    ];
    // An overloaded step need not wait long for its backlog: it has failed already.
    if scenario
        .webhook
        .as_ref()
        .is_some_and(|w| w.drain_ns > 2_000_000_000)
        && model == ModelKind::Webhook
    {
        pairs.push(("webhook.drain", "2s".into()));
    }
    let base = Scenario {
        source: text,
        ..scenario.clone()
    };
    Ok(overrides::apply_all(&base, &pairs, &|name| {
        std::env::var(name).ok()
    })?)
}

/// The load a scenario starts at.
fn scenario_load(scenario: &Scenario, knob: Knob) -> f64 {
    match knob {
        Knob::Rate => scenario.workload.shape.peak_rate_per_sec().unwrap_or(100.0),
        Knob::Connections => scenario.workload.subscribers as f64,
    }
}

/// Runs the search and writes its files.
pub async fn run_capacity(
    scenario: &Scenario,
    opts: &CapacityOptions,
) -> Result<CapacityOutcome, CapacityError> {
    let (model, knob) = plan_model(scenario, opts.model)?;
    let start = opts.start.unwrap_or_else(|| scenario_load(scenario, knob));
    if !(start.is_finite() && start >= 1.0) {
        return Err(usage(format!("--start {start}: must be at least 1")));
    }
    // Catch a step that would not validate before anything runs.
    step_scenario(scenario, model, knob, start.round(), opts)?;

    let started_s = crate::clock::real_ns() / 1_000_000_000;
    let (stamp, started_at) = utc_stamps(started_s);
    let dir = opts
        .run
        .results_dir(&format!("capacity-{}-{stamp}", scenario.name));
    std::fs::create_dir_all(&dir).map_err(|e| CapacityError::OutDir {
        path: dir.clone(),
        reason: e.to_string(),
    })?;

    // The most either knob may be set to (scenario validation: rates and subscribers).
    let ceiling = 10_000_000.0;
    let mut search = Search::new(SearchPlan {
        start,
        factor: opts.factor,
        max_steps: opts.max_steps,
        max_bisect: opts.max_bisect,
        resolution: opts.resolution,
        floor: 1.0,
        ceiling,
    });
    let began = Instant::now();
    let ctrl_c = crate::run::CtrlCFlag::watch();
    let mut steps: Vec<StepRecord> = Vec::new();
    let mut interrupted = false;
    let mut error = None;
    let stopped = loop {
        let load = match search.next() {
            Ok(load) => load,
            Err(stop) => break stop,
        };
        if ctrl_c.is_set() {
            interrupted = true;
            break Stop::Interrupted;
        }
        let elapsed_ns = began.elapsed().as_nanos() as u64;
        // Stop before a step that would end past the limit (judged by the last one's length).
        let last_step_ns = if steps.is_empty() {
            0
        } else {
            elapsed_ns / steps.len() as u64
        };
        if elapsed_ns + last_step_ns > opts.max_time_ns {
            break Stop::TimeLimit;
        }
        let phase = if search.bisecting() { "bisect" } else { "step" };
        let index = steps.len() + 1;
        let name = format!("step-{index:02}-{}", fmt_load(load));
        let step = step_scenario(scenario, model, knob, load, opts)?;
        eprintln!(
            "capacity: step {index} ({phase}): {} {}",
            fmt_load(load),
            knob.unit()
        );
        let run_opts = RunOptions {
            out: Some(dir.join(&name)),
            ..opts.run.clone()
        };
        let report = match run::run(&step, &run_opts).await {
            Ok(r) => r,
            Err(RunError::OutDir { path, reason }) => {
                return Err(CapacityError::OutDir { path, reason })
            }
            Err(source) => return Err(CapacityError::Run { step: name, source }),
        };
        let mut record = StepRecord {
            step: index,
            phase: phase.into(),
            load,
            dir: name,
            ..StepRecord::default()
        };
        let summary = report.summary.models.iter().find(|m| m.model == model);
        if let Some(m) = summary {
            fill_record(&mut record, m, &report.dir, &opts.slo, &step, model);
        }
        if let Some(e) = &report.error {
            record.error = Some(e.to_string());
            record.pass = false;
        }
        if report.interrupted() {
            record.pass = false;
            record.error = Some("interrupted".into());
        }
        eprintln!("capacity:   {}", report::step_line(&record));
        let cut_short = report.interrupted() || report.error.is_some();
        if !cut_short {
            search.record(load, record.pass);
        }
        steps.push(record);
        if report.interrupted() {
            interrupted = true;
            break Stop::Interrupted;
        }
        if let Some(e) = report.error {
            error = Some(e);
            break Stop::Error;
        }
    };

    let max_load = search.max_pass();
    let first_failing_load = search.min_fail();
    let first_fail = first_failing_load.and_then(|l| {
        steps
            .iter()
            .find(|s| s.load == l && s.error.is_none())
            .map(|s| &s.load_figures)
    });
    let baseline = steps
        .iter()
        .filter(|s| s.error.is_none())
        .min_by(|a, b| a.load.total_cmp(&b.load))
        .map(|s| &s.load_figures);
    let Diagnosis {
        bottleneck,
        message,
    } = match (stopped, first_fail) {
        (Stop::Interrupted | Stop::Error, None) => Diagnosis {
            bottleneck: Bottleneck::None,
            message: format!("the search was cut short: {}", stopped.describe()),
        },
        (_, f) => classify(f, baseline),
    };
    let result = CapacityResult {
        scenario: scenario.name.clone(),
        model,
        unit: knob.unit().into(),
        slo: opts.slo.to_string(),
        max_load,
        first_failing_load,
        bottleneck,
        message,
        stopped,
        started_at,
        steps,
    };
    report::write_files(&dir, &result, &opts.slo)?;
    Ok(CapacityOutcome {
        dir,
        result,
        interrupted,
        error,
    })
}

fn fill_record(
    r: &mut StepRecord,
    m: &ModelSummary,
    dir: &Path,
    slo: &Slo,
    step: &Scenario,
    model: ModelKind,
) {
    r.verdicts = slo.check(m);
    r.pass = r.verdicts.iter().all(|v| v.pass);
    if let Some(ws) = m.fleet().filter(|w| w.mode == "idle") {
        // Idle steps hold connections: a step that never got them all up did not hold its load.
        let held = m.connections.peak >= m.connections.target;
        r.verdicts.push(Verdict {
            clause: "all connections held".into(),
            observed: Some(m.connections.peak as f64),
            pass: held && ws.ramp_s > 0.0,
        });
        r.pass &= held && ws.ramp_s > 0.0;
    }
    // Idle steps deliver nothing: their latency is the connect latency, their failures the
    // connections that never came up.
    let idle = m.fleet().is_some_and(|w| w.mode == "idle");
    let lat = if idle { &m.connect_us } else { &m.latency_us };
    r.p50_us = lat.p50;
    r.p99_us = lat.p99;
    r.p999_us = lat.p999;
    (r.events, r.failed) = if idle {
        (m.connections.target, m.connections.failed)
    } else {
        (m.events, m.failed)
    };
    r.achieved_rate = m.achieved_rate;
    r.connections_peak = m.connections.peak;
    r.late_sends = m.late_sends;
    let host_cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let (gen_cpu, target_cpu) = measured_cpu(dir, m, step);
    let gen_cores_usable = match (model, &step.webhook, m.fleet()) {
        (ModelKind::Webhook, Some(cfg), _) => {
            crate::webhook::model::delivery_workers(&step.workload, cfg) as f64
        }
        // Fleet workers plus the controller that publishes.
        (_, _, Some(ws)) => (ws.fleet_workers + 1) as f64,
        _ => host_cores,
    };
    let pool_occupancy = step
        .webhook
        .as_ref()
        .filter(|_| model == ModelKind::Webhook)
        .map(|cfg| {
            m.achieved_rate * (m.ack_uncorrected_latency_us.mean / 1e6) / cfg.pool.max(1) as f64
        });
    r.load_figures = StepLoad {
        gen_cpu_cores: gen_cpu,
        gen_cores_usable: gen_cores_usable.min(host_cores),
        target_cpu_cores: target_cpu,
        host_cores,
        late_share: if m.events > 0 {
            m.late_sends as f64 / m.events as f64
        } else {
            0.0
        },
        lag_p99_us: m.schedule_lag_us.p99 as f64,
        pool_occupancy,
        // A step the harness's own side could not drive (the generator, or the emulated link)
        // is never the target's limit.
        generator_saturated: (m.saturation.generator || m.saturation.link)
            .then(|| m.saturation.reason.clone()),
    };
}

/// Mean generator and target CPU (cores) over the intervals that carried load, from the step's
/// `timeseries.csv`; the summary's CPU-seconds over the whole run when it cannot be read.
fn measured_cpu(dir: &Path, m: &ModelSummary, step: &Scenario) -> (f64, Option<f64>) {
    let target_measured = m.resources.target.peak_rss_bytes > 0;
    let rows: Vec<TimeseriesRow> = csv::Reader::from_path(dir.join("timeseries.csv"))
        .map(|mut r| {
            r.deserialize()
                .filter_map(Result::ok)
                .filter(|row: &TimeseriesRow| row.model == m.model)
                .collect()
        })
        .unwrap_or_default();
    let loaded: Vec<&TimeseriesRow> = if rows.iter().any(|r| r.offered > 0) {
        rows.iter().filter(|r| r.offered > 0).collect()
    } else {
        rows.iter().collect()
    };
    if loaded.is_empty() {
        let w = &step.workload;
        let secs = ((w.duration_ns + w.warmup_ns) as f64 / 1e9).max(1e-9);
        return (
            m.resources.generator.cpu_s / secs,
            target_measured.then(|| m.resources.target.cpu_s / secs),
        );
    }
    let n = loaded.len() as f64;
    let gen = loaded.iter().map(|r| r.gen_cpu_pct).sum::<f64>() / n / 100.0;
    let target = loaded.iter().map(|r| r.target_cpu_pct).sum::<f64>() / n / 100.0;
    (gen, target_measured.then_some(target))
}

/// Re-renders a `capacity` directory from its saved `capacity.json` into `out`: the JSON, the
/// CSV and the chart, and each step's run report (`report` on a capacity directory).
pub fn rerender(dir: &Path, out: &Path) -> Result<CapacityResult, ReportError> {
    let r: CapacityResult = crate::report::read_saved(dir, "capacity.json", out)?;
    let slo = crate::slo::parse(&r.slo).map_err(|e| ReportError::Parse {
        path: dir.join("capacity.json"),
        reason: format!("slo {:?}: {e}", r.slo),
    })?;
    crate::report::render_runs(dir, out, r.steps.iter().map(|s| s.dir.as_str()))?;
    report::write_files(out, &r, &slo)?;
    Ok(r)
}
