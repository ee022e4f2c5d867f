//! Command-line types (clap derive) and nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::scenario::{parse_duration_ns, Outage, OutageMode, SignatureScheme, Throttle};

/// pushbench: measure webhook and WebSocket event delivery side by side.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario (default: the built-in quick scenario) and write a results directory.
    Run {
        /// Scenario file (TOML), or the name of an embedded one: `quick` (the default, on
        /// loopback) or `wan` (every model behind an emulated 50 ms link, over TLS; needs root).
        scenario: Option<PathBuf>,
        /// Write results into exactly this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Progress display.
        #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
        progress: ProgressArg,
        /// Also write the threshold verdicts as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Run shard I of N (0-based): the subscribers with `subscriber % N == I`, their events
        /// and connections; `auto` reads JOB_COMPLETION_INDEX with PUSHBENCH_SHARDS (Kubernetes)
        /// or SLURM_PROCID with SLURM_NTASKS (Slurm). `pushbench merge` joins the shards.
        #[arg(long)]
        shard: Option<String>,
        /// Wait until this instant (unix seconds; or PUSHBENCH_START_AT) before starting, so
        /// every shard's schedule starts together.
        #[arg(long, env = "PUSHBENCH_START_AT")]
        start_at: Option<String>,
    },
    /// Regression verdict between two results directories, per model and metric; exit 1 on a
    /// regression. Changes within run-to-run variation are reported as noise.
    Compare {
        /// The reference results directory.
        baseline: PathBuf,
        /// The results directory to judge.
        new: PathBuf,
        /// Smallest relative change that can count, e.g. 10% or 0.1.
        #[arg(long, default_value = "10%", value_parser = tolerance)]
        tolerance: f64,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = CompareFormat::Text)]
        format: CompareFormat,
        /// Also write the verdicts as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Where to write compare.json and the overlay chart (default: the new directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Re-render the CSVs, charts and report.html from saved results; several directories are
    /// overlaid in one report, each run labelled by its scenario name and start time.
    Report {
        /// Results directories written by `run`.
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// Where to write (default: the one directory given; with several, a new
        /// `results/report-<UTC time>/`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Merge the results directories of a run's shards (`run --shard I/N`) into one, as if one
    /// machine had run the whole scenario: counts summed, histograms merged, thresholds judged
    /// on the merged figures (exit 1 if one fails), report rendered.
    Merge {
        /// The shards' results directories (all N of them).
        #[arg(required = true, num_args = 1..)]
        dirs: Vec<PathBuf>,
        /// Where to write the merged results.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a scenario file and print every problem; runs nothing.
    Validate {
        /// Scenario file (TOML).
        scenario: PathBuf,
    },
    /// Step the load up until an objective breaks, bisect, and report the highest load that
    /// holds it (writes capacity.json, capacity.csv, capacity.svg/png and one directory per step).
    Capacity(CapacityArgs),
    /// Run the scenario once per value of one key and chart both models' latency and cost
    /// against it (writes sweep.json, sweep.csv, sweep_*.svg/png and one directory per run).
    Sweep {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// The key and its values, e.g. workload.events_per_second=100,1000,10000.
        #[arg(long, value_name = "KEY=V1,V2,...")]
        set: String,
        /// Write into exactly this directory (default: results/sweep-NAME-UTCTIME/).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Progress display of each run.
        #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
        progress: ProgressArg,
    },
    /// Internal: a fleet worker process (started by `run`; reads its spec on stdin).
    #[command(hide = true)]
    Worker {
        /// Which kind of worker.
        #[arg(value_parser = ["websocket"])]
        kind: String,
    },
    /// Run a built-in target on its own.
    Serve {
        /// Which target.
        #[command(subcommand)]
        target: ServeTarget,
    },
}

/// Output formats of `compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    /// An aligned table.
    Text,
    /// A table for a pull-request comment.
    Markdown,
    /// Machine-readable.
    Json,
}

/// Options of `capacity`.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// Scenario file (TOML).
    pub scenario: PathBuf,
    /// The objective every step must hold, e.g. "p99 < 50ms, failed < 0.1%".
    #[arg(long)]
    pub slo: String,
    /// Which model to load (needed when the scenario enables both).
    #[arg(long, value_enum)]
    pub model: Option<crate::model_kind::ModelKind>,
    /// Measured length of each step.
    #[arg(long, default_value = "3s", value_parser = positive_duration_ns)]
    pub step_duration: u64,
    /// Warm-up of each step (left out of its figures).
    #[arg(long, default_value = "1s", value_parser = duration_ns)]
    pub step_warmup: u64,
    /// First load (default: the scenario's events_per_second, or subscribers in idle mode).
    #[arg(long)]
    pub start: Option<f64>,
    /// Ratio between geometric steps.
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    /// Most geometric steps (bisection steps come on top).
    #[arg(long, default_value_t = 12)]
    pub max_steps: usize,
    /// Most bisection steps.
    #[arg(long, default_value_t = 6)]
    pub max_bisect: usize,
    /// No new step starts after this long, e.g. 10m.
    #[arg(long, default_value = "10m", value_parser = positive_duration_ns)]
    pub max_time: u64,
    /// Write into exactly this directory (default: results/capacity-NAME-UTCTIME/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Progress display of each step.
    #[arg(long, value_enum, default_value_t = ProgressArg::Off)]
    pub progress: ProgressArg,
}

/// Progress display choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    /// A bar on a terminal, plain lines otherwise.
    Auto,
    /// Plain lines every 5 s.
    Plain,
    /// Nothing.
    Off,
}

/// Built-in targets.
#[derive(Debug, Subcommand)]
// Parsed once at start-up: a few hundred bytes on the stack do not matter.
#[allow(clippy::large_enum_variant)]
pub enum ServeTarget {
    /// The webhook receiver: verifies signatures, de-duplicates, times deliveries (GET /stats).
    Webhook(WebhookServeArgs),
    /// The WebSocket server: echo, ping/pong, and push of published events.
    Ws {
        /// Address to listen on (loopback unless you name another address).
        #[arg(long, default_value = "127.0.0.1:8081", value_parser = address)]
        listen: SocketAddr,
        /// Server processes sharing the port (SO_REUSEPORT), one thread each.
        #[arg(long, default_value_t = 1)]
        processes: usize,
        /// Where the control port (publishes, figures) listens: the harness's own path.
        #[arg(long, default_value = "127.0.0.1", hide = true)]
        control_ip: std::net::IpAddr,
        /// Environment variable holding a token every upgrade must carry (Authorization:
        /// Bearer TOKEN, or ?token=TOKEN); others get 401.
        #[arg(long)]
        token_env: Option<String>,
        /// TLS (wss://).
        #[command(flatten)]
        tls: TlsServeArgs,
    },
    /// A bare HTTP sink that answers 204 to everything (neutral target for speed comparisons).
    Sink {
        /// Address to listen on (loopback unless you name another address).
        #[arg(long, default_value = "127.0.0.1:8080", value_parser = address)]
        listen: SocketAddr,
        /// Runtime worker threads (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
        /// TLS.
        #[command(flatten)]
        tls: TlsServeArgs,
    },
}

/// TLS options of the `serve` targets.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsServeArgs {
    /// Serve TLS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS with a certificate made now; prints the path of the CA to trust.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Seal session tickets with the 32-byte key in this file (the harness gives its server
    /// processes one key, so a client resumes on any of them).
    #[arg(long, hide = true, requires = "tls_cert")]
    pub tls_ticket_key: Option<PathBuf>,
}

/// Options of `serve webhook`.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookServeArgs {
    /// Address to listen on (loopback unless you name another address).
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = address)]
    pub listen: SocketAddr,
    /// Signature scheme to verify.
    #[arg(long, value_enum, default_value_t = SignatureScheme::Standard)]
    pub signature: SignatureScheme,
    /// Environment variable holding the secret (never pass secrets as arguments).
    #[arg(long)]
    pub secret_env: Option<String>,
    /// Delay added to every answer, e.g. 5ms.
    #[arg(long, default_value = "0s", value_parser = duration_ns)]
    pub delay: u64,
    /// Fraction of requests answered 503, 0..1.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub fail_rate: f64,
    /// Start of a one-off stall, measured from the first request, e.g. 2s.
    #[arg(long, requires = "stall_for", value_parser = duration_ns)]
    pub stall_at: Option<u64>,
    /// Length of the stall, e.g. 1s.
    #[arg(long, requires = "stall_at", value_parser = duration_ns)]
    pub stall_for: Option<u64>,
    /// An outage window AT:FOR or AT:FOR:MODE, from the first request: MODE 503 (default, or 503:2s to
    /// send Retry-After: 2) or drop (close connections unanswered). Repeatable.
    #[arg(long, value_parser = outage_arg)]
    pub outage: Vec<Outage>,
    /// Answer a fraction of requests 429 with Retry-After: RATE:RETRY_AFTER, e.g. 0.1:1s.
    #[arg(long, value_parser = throttle_arg)]
    pub throttle: Option<Throttle>,
    /// Fraction of endpoints (/hooks/{subscriber}) that always answer 410 Gone, 0..1.
    #[arg(long, default_value_t = 0.0, value_parser = fraction)]
    pub gone: f64,
    /// Bodies larger than this get 413.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Accept any signature (raw-speed benchmarks).
    #[arg(long)]
    pub no_verify: bool,
    /// TLS.
    #[command(flatten)]
    pub tls: TlsServeArgs,
    /// Seed for injected failures.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// A duration like `3s`, `500ms`, `10m`, in nanoseconds.
fn duration_ns(text: &str) -> Result<u64, String> {
    crate::scenario::parse_duration_ns(text)
}

/// A duration longer than zero, in nanoseconds.
fn positive_duration_ns(text: &str) -> Result<u64, String> {
    match duration_ns(text)? {
        0 => Err("must be longer than 0s".into()),
        ns => Ok(ns),
    }
}

/// A relative change like `10%` or `0.1`, below 1000%.
fn tolerance(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let value = match text.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
        None => text.parse::<f64>(),
    };
    match value {
        Ok(t) if (0.0..10.0).contains(&t) => Ok(t),
        _ => Err(format!(
            "\"{text}\" is not a relative change like 10% or 0.1"
        )),
    }
}

/// A fraction between 0 and 1.
fn fraction(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|f| (0.0..=1.0).contains(f))
        .ok_or_else(|| format!("\"{text}\" is not a fraction between 0 and 1"))
}

/// Whole seconds of a `Retry-After` value such as `2s`.
fn seconds_arg(text: &str) -> Result<u32, String> {
    let ns = parse_duration_ns(text)?;
    if ns % 1_000_000_000 != 0 || ns / 1_000_000_000 > u64::from(u32::MAX) {
        return Err(format!("Retry-After carries whole seconds, not \"{text}\""));
    }
    Ok((ns / 1_000_000_000) as u32)
}

/// `AT:FOR[:503[:RETRY_AFTER]|:drop]`, e.g. `2s:1s:drop` or `2s:1s:503:5s`.
fn outage_arg(text: &str) -> Result<Outage, String> {
    let mut parts = text.split(':');
    let (Some(at), Some(len)) = (parts.next(), parts.next()) else {
        return Err("expected AT:FOR[:MODE], e.g. 2s:1s:drop".into());
    };
    let mode = match (parts.next(), parts.next()) {
        (None | Some("503"), None) => OutageMode::Unavailable {
            retry_after_s: None,
        },
        (Some("503"), Some(ra)) => OutageMode::Unavailable {
            retry_after_s: Some(seconds_arg(ra)?),
        },
        (Some("drop"), None) => OutageMode::Drop,
        _ => return Err("the mode is 503, 503:RETRY_AFTER or drop".into()),
    };
    Ok(Outage {
        at_ns: parse_duration_ns(at)?,
        for_ns: parse_duration_ns(len)?,
        mode,
    })
}

/// `RATE:RETRY_AFTER`, e.g. `0.1:1s`.
fn throttle_arg(text: &str) -> Result<Throttle, String> {
    let (rate, ra) = text
        .split_once(':')
        .ok_or("expected RATE:RETRY_AFTER, e.g. 0.1:1s")?;
    let rate: f64 = rate
        .parse()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or("the rate is a fraction between 0 and 1")?;
    Ok(Throttle {
        rate,
        retry_after_s: seconds_arg(ra)?,
    })
}

/// A socket address like `127.0.0.1:8080`.
fn address(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("\"{text}\" is not an address like 127.0.0.1:8080"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_typed_when_the_command_line_is_parsed() {
        let cli =
            Cli::try_parse_from(["pushbench", "compare", "a", "b", "--tolerance", "5%"]).unwrap();
        assert!(matches!(cli.command, Command::Compare { tolerance, .. } if tolerance == 0.05));
        for bad in ["abc", "2000%", "1e400"] {
            let e = Cli::try_parse_from(["pushbench", "compare", "a", "b", "--tolerance", bad])
                .unwrap_err();
            assert!(e.to_string().contains("--tolerance"), "{e}");
            assert!(e.use_stderr());
        }
        let e = Cli::try_parse_from(["pushbench", "serve", "sink", "--listen", "localhost"])
            .unwrap_err();
        assert!(e.to_string().contains("not an address like"), "{e}");
        assert_eq!(positive_duration_ns("250ms"), Ok(250_000_000));
        assert!(positive_duration_ns("0s").is_err());
        assert_eq!(duration_ns("0s"), Ok(0));
        assert!(duration_ns("3 parsecs").is_err());
    }

    #[test]
    fn bad_fault_flags_say_what_is_expected() {
        assert!(outage_arg("2s").unwrap_err().contains("AT:FOR"));
        assert!(outage_arg("2s:1s:down").unwrap_err().contains("drop"));
        assert!(throttle_arg("0.1")
            .unwrap_err()
            .contains("RATE:RETRY_AFTER"));
        assert!(throttle_arg("0.1:500ms")
            .unwrap_err()
            .contains("whole seconds"));
        assert!(throttle_arg("2:1s")
            .unwrap_err()
            .contains("between 0 and 1"));
        let e = Cli::try_parse_from(["pushbench", "serve", "webhook", "--fail-rate", "1.5"])
            .unwrap_err();
        assert!(e.to_string().contains("between 0 and 1"), "{e}");
        let e = Cli::try_parse_from(["pushbench", "serve", "webhook", "--signature", "hmac"])
            .unwrap_err();
        assert!(
            e.to_string().contains("standard, github, stripe, none"),
            "{e}"
        );
    }
}
