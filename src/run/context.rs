//! What a run is given and shares with its models: the options, the results directory's open
//! writers, warnings, the errors that stop a run, and the reachability check of an external
//! target. Models import this, never the run itself.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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
    /// A worker stopped reporting before the run ended (a thread panicked, a process died);
    /// the results so far were written and marked incomplete (exit 3).
    #[error("{0}")]
    WorkerDied(String),
    /// The generator ran out of ports or file descriptors; the results were still written
    /// (exit 3). The message names the limit and what to change.
    #[error("{0}")]
    Exhausted(String),
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

impl RunOptions {
    /// The directory a command writes: `--out` exactly, else `<results_root>/<name>` (the
    /// name ends in the start's UTC time), never one that exists: a second run started in the
    /// same second gets `-2`, `-3`, ... rather than overwriting the first.
    pub fn results_dir(&self, name: &str) -> PathBuf {
        if let Some(d) = &self.out {
            return d.clone();
        }
        let base = self.results_root.join(name);
        let mut dir = base.clone();
        let mut n = 2;
        while dir.exists() {
            dir = PathBuf::from(format!("{}-{n}", base.display()));
            n += 1;
        }
        dir
    }
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
    /// When the run was told to stop early (Ctrl-C, SIGTERM, a worker that died), monotonic
    /// ns; 0 while it runs to its end.
    pub stopped_mono: Arc<std::sync::atomic::AtomicU64>,
    /// `timeseries.csv`.
    pub timeseries: csv::Writer<File>,
    /// `percentiles.csv`.
    pub percentiles: csv::Writer<File>,
    /// Problems worth telling the user that did not stop the run.
    pub warnings: Vec<String>,
    /// Why the figures are incomplete (a worker died), when they are.
    pub incomplete: Option<String>,
}

impl RunContext {
    /// Records that the figures miss part of the run, and why (the first reason stays; the
    /// run's error says it at the end).
    pub fn mark_incomplete(&mut self, why: String) {
        if self.incomplete.is_none() {
            self.incomplete = Some(why);
        }
    }

    /// When the run ended before its schedule did (Ctrl-C, SIGTERM, a worker died): the
    /// instant it was told to stop (monotonic ns). Rates of a run cut short are over the time
    /// until then, not over the time it took to wind down.
    pub fn cut_short_at(&self) -> Option<u64> {
        let at = self.stopped_mono.load(std::sync::atomic::Ordering::Relaxed);
        (at > 0).then_some(at)
    }

    /// Records the instant the run was told to stop early (the first one stays).
    pub fn mark_stopped(&self) {
        let _ = self.stopped_mono.compare_exchange(
            0,
            crate::clock::mono_ns(),
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Records a warning once and prints it.
    pub fn warn(&mut self, message: String) {
        if !self.warnings.contains(&message) {
            eprintln!("warning: {message}");
            self.warnings.push(message);
        }
    }
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

/// `results/` next to the current directory.
pub fn default_results_root() -> PathBuf {
    Path::new("results").to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_results_directory_never_reuses_an_existing_one() {
        let root = tempfile::tempdir().unwrap();
        let opts = RunOptions {
            out: None,
            results_root: root.path().to_path_buf(),
            launch: TargetLaunch::InProcess,
            progress: ProgressMode::Off,
            interval_ns: 1_000_000_000,
        };
        let first = opts.results_dir("sweep-x-20261201T000000Z");
        assert_eq!(first, root.path().join("sweep-x-20261201T000000Z"));
        std::fs::create_dir(&first).unwrap();
        let second = opts.results_dir("sweep-x-20261201T000000Z");
        assert_eq!(second, root.path().join("sweep-x-20261201T000000Z-2"));
        std::fs::create_dir(&second).unwrap();
        assert!(opts
            .results_dir("sweep-x-20261201T000000Z")
            .ends_with("sweep-x-20261201T000000Z-3"));
        // --out is taken as given.
        let exact = RunOptions {
            out: Some(first.clone()),
            ..opts.clone()
        };
        assert_eq!(exact.results_dir("ignored"), first);
    }
}
