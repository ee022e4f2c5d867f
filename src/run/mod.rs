//! `pushbench run`: prepares the results directory, runs each enabled model, evaluates
//! thresholds and writes the summary. Whatever happens after the directory exists (a target that
//! dies, Ctrl-C), the results gathered so far are written.

pub mod context;
pub mod pipeline;
pub mod progress;
pub mod signals;

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use context::{
    default_results_root, probe_url, ProgressMode, RunContext, RunError, RunOptions,
};
pub use signals::CtrlCFlag;

use crate::record::results::{
    percentiles_writer, timeseries_writer, utc_stamps, write_summary, HostInfo, ModelSummary,
    Summary, ThresholdResult,
};
use crate::scenario::Scenario;

/// The message for attempts that failed for want of local ports or file descriptors, naming
/// the limit and what to change; `None` when there were none.
pub fn exhaustion_message(models: &[ModelSummary]) -> Option<String> {
    let count = |name: &str| -> u64 {
        models
            .iter()
            .map(|m| m.errors.get(name).copied().unwrap_or(0))
            .sum()
    };
    let (ports, files) = (count("no_ports"), count("no_files"));
    let mut parts = Vec::new();
    if files > 0 {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        parts.push(format!(
            "{files} connection attempts failed for want of file descriptors (open-files limit \
             {} soft / {} hard): lower the connection count or pool, raise the hard limit \
             (`ulimit -Hn`, systemd LimitNOFILE, docker --ulimit nofile), or spread the load \
             over more processes (websocket.connections_per_worker)",
            limit.rlim_cur, limit.rlim_max
        ));
    }
    if ports > 0 {
        let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .map(|r| r.split_whitespace().collect::<Vec<_>>().join("-"))
            .unwrap_or_else(|_| "unknown".into());
        parts.push(format!(
            "{ports} connection attempts failed for want of local ports (ephemeral range \
             {range}, each usable once per destination until TIME_WAIT ends): use keep-alive \
             connections instead of fresh ones, lower the rate of new connections, widen \
             net.ipv4.ip_local_port_range, or add destination addresses"
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The outcome of a run.
#[derive(Debug)]
pub struct RunReport {
    /// Where the results are.
    pub dir: PathBuf,
    /// What `summary.json` holds.
    pub summary: Summary,
    /// The error that cut the run short, if any (results were still written).
    pub error: Option<RunError>,
}

impl RunReport {
    /// True when Ctrl-C stopped the run.
    pub fn interrupted(&self) -> bool {
        self.summary.interrupted
    }

    /// True when every threshold held.
    pub fn thresholds_pass(&self) -> bool {
        self.summary.thresholds.iter().all(|t| t.pass)
    }
}

fn prepare_dir(scenario: &Scenario, opts: &RunOptions, stamp: &str) -> Result<PathBuf, RunError> {
    let dir = opts.results_dir(&format!("{}-{stamp}", scenario.name));
    let fail = |reason: String| RunError::OutDir {
        path: dir.clone(),
        reason,
    };
    std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
    // Prove it is writable before any load.
    let probe = dir.join(".pushbench-write-test");
    File::create(&probe)
        .and_then(|mut f| f.write_all(b"ok"))
        .map_err(|e| fail(e.to_string()))?;
    let _ = std::fs::remove_file(probe);
    // The report shows what ran, and a later `report` re-renders it without the original file.
    std::fs::write(dir.join("scenario.toml"), scenario.redacted_source())
        .map_err(|e| fail(e.to_string()))?;
    Ok(dir)
}

/// Runs a validated scenario and writes its results directory.
///
/// Errors before the directory exists (it cannot be written) are returned as `Err`; anything
/// later comes back inside the report, with the results gathered so far written.
pub async fn run(scenario: &Scenario, opts: &RunOptions) -> Result<RunReport, RunError> {
    let started_real_s = crate::clock::real_ns() / 1_000_000_000;
    let (stamp, started_at) = utc_stamps(started_real_s);
    let shard = scenario.workload.shard;
    let stamp = if shard.is_whole() {
        stamp
    } else {
        format!("{stamp}-shard{}of{}", shard.index, shard.count)
    };
    let dir = prepare_dir(scenario, opts, &stamp)?;
    let mut ctx = RunContext {
        timeseries: timeseries_writer(&dir).map_err(|e| RunError::OutDir {
            path: dir.clone(),
            reason: e.to_string(),
        })?,
        percentiles: percentiles_writer(&dir).map_err(|e| RunError::OutDir {
            path: dir.clone(),
            reason: e.to_string(),
        })?,
        dir: dir.clone(),
        launch: opts.launch.clone(),
        progress: opts.progress,
        interval_ns: opts.interval_ns,
        interrupted: Arc::new(AtomicBool::new(false)),
        stopped_mono: Default::default(),
        warnings: Vec::new(),
        incomplete: None,
    };

    // Shards start together: each waits for the agreed instant (Ctrl-C still ends the wait).
    if let Some(at) = scenario.workload.start_at_s {
        let ctrl_c = CtrlCFlag::watch();
        while (crate::clock::real_ns() as f64) < at * 1e9 && !ctrl_c.is_set() {
            let left_ns = (at * 1e9 - crate::clock::real_ns() as f64).max(0.0) as u64;
            tokio::time::sleep(std::time::Duration::from_nanos(left_ns.min(50_000_000))).await;
        }
        if ctrl_c.is_set() {
            ctx.interrupted.store(true, Ordering::Relaxed);
        }
    }
    let started_s = crate::clock::real_ns() as f64 / 1e9;

    let mut models = Vec::new();
    let mut error = None;
    let waited_out = ctx.interrupted.load(Ordering::Relaxed);
    if let Some(cfg) = scenario.webhook.as_ref().filter(|_| !waited_out) {
        match crate::webhook::model::run_webhook(scenario, cfg, &mut ctx).await {
            Ok(m) => models.push(m),
            Err(e) => error = Some(e),
        }
    }
    if error.is_none() && !ctx.interrupted.load(Ordering::Relaxed) {
        if let Some(cfg) = &scenario.websocket {
            match crate::websocket::model::run_websocket(scenario, cfg, &mut ctx).await {
                Ok(m) => models.push(m),
                Err(e) => error = Some(e),
            }
        }
    }
    for cfg in [&scenario.sse, &scenario.longpoll].into_iter().flatten() {
        if error.is_some() || ctx.interrupted.load(Ordering::Relaxed) {
            break;
        }
        match crate::websocket::model::run_websocket(scenario, cfg, &mut ctx).await {
            Ok(m) => models.push(m),
            Err(e) => error = Some(e),
        }
    }
    ctx.timeseries.flush()?;
    ctx.percentiles.flush()?;

    let w = &scenario.workload;
    let mut summary = Summary {
        scenario: scenario.name.clone(),
        started_at,
        duration_s: w.duration_ns as f64 / 1e9,
        warmup_s: w.warmup_ns as f64 / 1e9,
        interrupted: ctx.interrupted.load(Ordering::Relaxed),
        incomplete: ctx.incomplete.clone(),
        host: HostInfo::current(),
        version: env!("CARGO_PKG_VERSION").into(),
        shard: (!shard.is_whole()).then(|| crate::shards::ShardInfo {
            index: shard.index,
            count: shard.count,
            start_at: scenario.workload.start_at_s,
            started_s,
            started_at: utc_stamps(started_s as u64).1,
            host: HostInfo::current().hostname,
            events: models.iter().map(|m| m.events).sum(),
        }),
        shards: Vec::new(),
        models,
        thresholds: Vec::new(),
    };
    summary.thresholds = evaluate_thresholds(scenario, &summary.models);
    if error.is_none() {
        error = ctx.incomplete.clone().map(RunError::WorkerDied);
    }
    if error.is_none() {
        error = exhaustion_message(&summary.models).map(RunError::Exhausted);
    }
    write_summary(&dir, &summary)?;
    // Charts and the HTML page come from the files just written, exactly as `report` would
    // make them later; a failure here loses no results, so it is a warning.
    if let Err(e) = crate::report::render(std::slice::from_ref(&dir), &dir) {
        ctx.warn(format!("the report could not be rendered: {e}"));
    }
    Ok(RunReport {
        dir,
        summary,
        error,
    })
}

/// Evaluates every threshold of the scenario against the models that ran.
pub fn evaluate_thresholds(scenario: &Scenario, models: &[ModelSummary]) -> Vec<ThresholdResult> {
    crate::thresholds::evaluate(&scenario.thresholds, models)
}
