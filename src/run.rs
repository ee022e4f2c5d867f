//! `pushbench run`: prepares the results directory, runs each enabled model, evaluates
//! thresholds and writes the summary. Whatever happens after the directory exists (a target that
//! dies, Ctrl-C), the results gathered so far are written.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use crate::record::results::{
    percentiles_writer, timeseries_writer, utc_stamps, write_summary, HostInfo, ModelSummary,
    Summary, ThresholdResult,
};
use crate::record::{Counter, IntervalStats, PhaseStats};
use crate::scenario::Scenario;
use crate::servers::launch::TargetLaunch;

/// What can stop a run, mapped to exit codes by `main`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The results directory cannot be created or written (exit 2: nothing ran).
    #[error("cannot write results to {path}: {reason}")]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The target did not answer before the run (exit 3).
    #[error("target {url} is unreachable: {reason}")]
    Unreachable {
        /// The URL as written in the scenario.
        url: String,
        /// Why.
        reason: String,
    },
    /// The run could not be set up (exit 3).
    #[error("{0}")]
    Setup(String),
    /// Writing results failed mid-run (exit 3).
    #[error("writing results: {0}")]
    Io(#[from] std::io::Error),
    /// The generator ran out of ports or file descriptors; the results were still written
    /// (exit 3). The message names the limit and what to change.
    #[error("{0}")]
    Exhausted(String),
}

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

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines every few seconds.
    Plain,
    /// Nothing.
    Off,
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Exactly this directory, or `None` for `results/<name>-<UTC time>/`.
    pub out: Option<PathBuf>,
    /// Parent of default directories.
    pub results_root: PathBuf,
    /// How built-in targets run.
    pub launch: TargetLaunch,
    /// Progress display.
    pub progress: ProgressMode,
    /// Interval length for time series (1 s).
    pub interval_ns: u64,
}

/// What the models share during a run.
pub struct RunContext {
    /// The results directory.
    pub dir: PathBuf,
    /// How built-in targets run.
    pub launch: TargetLaunch,
    /// Progress display.
    pub progress: ProgressMode,
    /// Interval length.
    pub interval_ns: u64,
    /// Set on Ctrl-C.
    pub interrupted: Arc<AtomicBool>,
    /// `timeseries.csv`.
    pub timeseries: csv::Writer<File>,
    /// `percentiles.csv`.
    pub percentiles: csv::Writer<File>,
    /// Problems worth telling the user that did not stop the run.
    pub warnings: Vec<String>,
}

impl RunContext {
    /// Records a warning once and prints it.
    pub fn warn(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            eprintln!("warning: {message}");
            self.warnings.push(message);
        }
    }
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
    let dir = match &opts.out {
        Some(d) => d.clone(),
        None => {
            let base = opts.results_root.join(format!("{}-{stamp}", scenario.name));
            // Never overwrite an earlier run that started in the same second.
            let mut dir = base.clone();
            let mut n = 2;
            while dir.exists() {
                dir = PathBuf::from(format!("{}-{n}", base.display()));
                n += 1;
            }
            dir
        }
    };
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
        warnings: Vec::new(),
    };

    let mut models = Vec::new();
    let mut error = None;
    if let Some(cfg) = &scenario.webhook {
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
    ctx.timeseries.flush()?;
    ctx.percentiles.flush()?;

    let w = &scenario.workload;
    let mut summary = Summary {
        scenario: scenario.name.clone(),
        started_at,
        duration_s: w.duration_ns as f64 / 1e9,
        warmup_s: w.warmup_ns as f64 / 1e9,
        interrupted: ctx.interrupted.load(Ordering::Relaxed),
        host: HostInfo::current(),
        version: env!("CARGO_PKG_VERSION").into(),
        models,
        thresholds: Vec::new(),
    };
    summary.thresholds = evaluate_thresholds(scenario, &summary.models);
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

/// Resolves an external target's address and checks that it accepts connections, so an
/// unreachable target stops the run before any load (exit 3, naming the URL).
pub fn probe_url(url: &crate::scenario::UrlTemplate) -> Result<std::net::SocketAddr, RunError> {
    use std::net::ToSocketAddrs;
    let unreachable = |reason: String| RunError::Unreachable {
        url: url.raw.clone(),
        reason,
    };
    let addr = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve {}: {e}", url.host)))?
        .next()
        .ok_or_else(|| unreachable(format!("{} has no address", url.host)))?;
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(3))
        .map_err(|e| unreachable(format!("cannot connect to {addr}: {e}")))?;
    Ok(addr)
}

/// Evaluates every threshold of the scenario against the models that ran.
pub fn evaluate_thresholds(scenario: &Scenario, models: &[ModelSummary]) -> Vec<ThresholdResult> {
    crate::thresholds::evaluate(&scenario.thresholds, models)
}

type Signal = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>>>>;

/// Ctrl-C or SIGTERM (what CI runners and `timeout` send), whichever comes first.
fn interrupt_signal() -> Signal {
    Box::pin(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })
}

/// Ctrl-C and SIGTERM as the models' collectors see them.
pub struct Interrupts {
    signal: Signal,
}

impl Default for Interrupts {
    fn default() -> Self {
        Self {
            signal: interrupt_signal(),
        }
    }
}

impl Interrupts {
    /// Waits for the next worker report. The first Ctrl-C sets `stop` (workers wind down and
    /// the results so far are written); a second one exits at once.
    pub async fn next_report(
        &mut self,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::record::WorkerReport>,
        ctx: &RunContext,
        stop: &AtomicBool,
        progress: &Progress,
    ) -> Option<crate::record::WorkerReport> {
        loop {
            tokio::select! {
                r = rx.recv() => {
                    if ctx.interrupted.load(Ordering::Relaxed) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    return r;
                }
                _ = &mut self.signal => {
                    if ctx.interrupted.swap(true, Ordering::Relaxed) {
                        eprintln!("interrupted again: exiting without writing the summary");
                        std::process::exit(130);
                    }
                    stop.store(true, Ordering::Relaxed);
                    progress.note("interrupted: stopping, writing results so far (Ctrl-C again to abort)");
                    self.signal = interrupt_signal();
                }
            }
        }
    }
}

/// Remembers a Ctrl-C for commands that run several scenarios in a row (`capacity`, `sweep`):
/// a run's own handler stops that run, and this one also catches a Ctrl-C between runs, which
/// no run is listening for. Dropping it stops watching.
pub struct CtrlCFlag {
    set: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CtrlCFlag {
    /// Starts watching (inside a tokio runtime).
    pub fn watch() -> Self {
        let set = Arc::new(AtomicBool::new(false));
        let flag = set.clone();
        let task = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        });
        Self { set, task }
    }

    /// Whether Ctrl-C was pressed since [`CtrlCFlag::watch`].
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }
}

impl Drop for CtrlCFlag {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Live progress: a bar on a terminal, a plain line every 5 s otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    mode: ProgressMode,
    model: &'static str,
    last_plain_s: f64,
}

impl Progress {
    /// Starts showing progress for a run of `total_s` seconds.
    pub fn new(mode: ProgressMode, total_s: f64, model: &'static str) -> Self {
        let bar = (mode == ProgressMode::Auto && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(total_s.ceil() as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:20}] {pos:>3}/{len}s {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(model);
            bar
        });
        Self {
            bar,
            mode,
            model,
            last_plain_s: 0.0,
        }
    }

    /// Shows one closed interval.
    pub fn update(&mut self, t_s: f64, interval: &IntervalStats, measured: &PhaseStats) {
        let ack = interval.merged(|p| &p.ack);
        let p99 = if ack.is_empty() {
            0
        } else {
            ack.value_at_quantile(0.99)
        };
        let errors: u64 = (Counter::ErrorBase as usize..crate::record::COUNTERS)
            .map(|i| interval.phases.iter().map(|p| p.counters[i]).sum::<u64>())
            .sum();
        let msg = format!(
            "{}/s  ack p99 {}  {} err  {} queued  {} ok",
            interval.total(Counter::Sent),
            crate::report::table::fmt_us(p99),
            errors,
            interval.backlog,
            measured.get(Counter::Delivered),
        );
        match (&self.bar, self.mode) {
            (Some(bar), _) => {
                bar.set_position(t_s.floor() as u64);
                bar.set_message(msg);
            }
            (None, ProgressMode::Off) => {}
            (None, _) => {
                if t_s - self.last_plain_s >= 5.0 {
                    eprintln!("[{t_s:>5.1}s] {}: {msg}", self.model);
                    self.last_plain_s = t_s;
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

/// `results/` next to the current directory.
pub fn default_results_root() -> PathBuf {
    Path::new("results").to_path_buf()
}
