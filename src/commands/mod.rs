//! The commands: each takes its validated arguments, does its work, prints what the user reads
//! and returns an [`Outcome`]; `main` only maps the outcome to an exit code.

mod compare;

use crate::cli::{CapacityArgs, Command, ProgressArg, ServeTarget};
use crate::report::junit;
use crate::run::{self, ProgressMode, RunError, RunOptions};
use crate::scenario;
use crate::servers::launch::TargetLaunch;

/// How a command ended, as the exit code says it (see DESIGN.md, exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done, every check held (0).
    Ok,
    /// Done, and a threshold, the capacity search's SLO or a regression check failed (1).
    CheckFailed,
    /// Usage or scenario error: nothing ran (2).
    Usage,
    /// The command could not proceed or was cut short; results so far are written (3).
    Failed,
    /// Ctrl-C or SIGTERM; results so far are written (130).
    Interrupted,
}

impl Outcome {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::CheckFailed => 1,
            Outcome::Usage => 2,
            Outcome::Failed => 3,
            Outcome::Interrupted => 130,
        }
    }
}

/// Runs one command.
pub fn execute(command: Command) -> Outcome {
    match command {
        Command::Worker { .. } => match crate::websocket::workers::run_worker_process() {
            Ok(()) => Outcome::Ok,
            Err(e) => {
                eprintln!("error: {e}");
                Outcome::Failed
            }
        },
        Command::Merge { dirs, out } => match crate::merge::merge(&dirs, &out) {
            Ok(merged) => {
                print!("{}", crate::report::table::render(&merged.summary));
                let starts: Vec<f64> = merged.summary.shards.iter().map(|s| s.started_s).collect();
                let spread = starts.iter().cloned().fold(f64::MIN, f64::max)
                    - starts.iter().cloned().fold(f64::MAX, f64::min);
                for sh in &merged.summary.shards {
                    println!(
                        "shard {} of {} on {}: {} events, started {} (+{:.3} s)",
                        sh.index,
                        sh.count,
                        sh.host,
                        sh.events,
                        sh.started_at,
                        sh.started_s - starts.iter().cloned().fold(f64::MAX, f64::min)
                    );
                }
                println!(
                    "merged {} shards; their starts spread over {:.3} s (each shard's own clock)",
                    merged.summary.shards.len(),
                    spread
                );
                println!("results: {}", merged.dir.display());
                if merged.summary.thresholds.iter().all(|t| t.pass) {
                    Outcome::Ok
                } else {
                    Outcome::CheckFailed
                }
            }
            Err(e @ crate::merge::MergeError::Mismatch(_)) => usage_error(e),
            Err(e) => {
                eprintln!("error: {e}");
                Outcome::Failed
            }
        },
        Command::Report { dirs, out } => {
            let out = out.unwrap_or_else(|| match dirs.as_slice() {
                [one] => one.clone(),
                _ => {
                    let now = crate::clock::real_ns() / 1_000_000_000;
                    let stamp = crate::record::results::utc_stamps(now).0;
                    run::default_results_root().join(format!("report-{stamp}"))
                }
            });
            let done = match dirs.as_slice() {
                [one] if one.join("capacity.json").is_file() => {
                    crate::capacity::rerender(one, &out)
                        .map(|r| print!("{}", crate::capacity::render_table(&r)))
                }
                [one] if one.join("sweep.json").is_file() => crate::sweep::rerender(one, &out)
                    .map(|r| print!("{}", crate::sweep::render_table(&r))),
                _ => crate::report::render(&dirs, &out)
                    .map(|page| println!("report: {}", page.display())),
            };
            match done {
                Ok(()) => {
                    println!("results: {}", out.display());
                    Outcome::Ok
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    let unreadable = matches!(
                        e,
                        crate::report::ReportError::Read { .. }
                            | crate::report::ReportError::Parse { .. }
                    );
                    if unreadable {
                        Outcome::Usage
                    } else {
                        Outcome::Failed
                    }
                }
            }
        }
        Command::Validate { scenario } => match scenario::load(&scenario) {
            Ok(s) => {
                println!("{}: ok (scenario \"{}\")", scenario.display(), s.name);
                Outcome::Ok
            }
            Err(e) => {
                eprint!("{e}");
                Outcome::Usage
            }
        },
        Command::Compare {
            baseline,
            new,
            tolerance,
            format,
            junit,
            out,
        } => compare::compare(&baseline, &new, tolerance, format, junit.as_deref(), out),
        Command::Run {
            scenario,
            out,
            progress,
            junit,
            shard,
            start_at,
        } => {
            let mut scenario = match scenario {
                Some(path) => match scenario::load_or_embedded(&path) {
                    Ok(s) => s,
                    Err(e) => {
                        eprint!("{e}");
                        return Outcome::Usage;
                    }
                },
                None => scenario::default_scenario(),
            };
            if let Err(code) = network_preflight(&scenario, None) {
                return code;
            }
            if let Some(arg) = &shard {
                match crate::shards::parse_shard(arg, &|k| std::env::var(k).ok()) {
                    Ok(s) => scenario.workload.shard = s,
                    Err(e) => return usage_error(e),
                }
            }
            if let Some(arg) = &start_at {
                match crate::shards::parse_start_at(arg) {
                    Ok(s) => scenario.workload.start_at_s = Some(s),
                    Err(e) => return usage_error(e),
                }
            }
            let opts = match run_options(out, progress) {
                Ok(o) => o,
                Err(code) => return code,
            };
            match runtime().block_on(run::run(&scenario, &opts)) {
                Ok(report) => {
                    print!("{}", crate::report::table::render(&report.summary));
                    if let Some(path) = &junit {
                        let cases = junit::threshold_cases(&report.summary.thresholds);
                        let xml = junit::document("pushbench thresholds", &cases);
                        if let Err(e) = std::fs::write(path, xml) {
                            eprintln!("error: cannot write {}: {e}", path.display());
                        }
                    }
                    let code = if report.interrupted() {
                        Outcome::Interrupted
                    } else if let Some(e) = &report.error {
                        eprintln!("error: {e}");
                        Outcome::Failed
                    } else if report.summary.shard.is_some() {
                        // A shard's figures are part of the run's: `merge` judges the thresholds.
                        if !report.thresholds_pass() {
                            println!("(a shard alone: thresholds are judged on the merged figures by `pushbench merge`)");
                        }
                        Outcome::Ok
                    } else if !report.thresholds_pass() {
                        Outcome::CheckFailed
                    } else {
                        Outcome::Ok
                    };
                    println!("results: {}", report.dir.display());
                    code
                }
                Err(e @ RunError::OutDir { .. }) => {
                    eprintln!("error: {e}");
                    Outcome::Usage
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Outcome::Failed
                }
            }
        }
        Command::Capacity(args) => capacity_command(args),
        Command::Sweep {
            scenario,
            set,
            out,
            progress,
        } => sweep_command(&scenario, &set, out, progress),
        Command::Serve {
            target: ServeTarget::Webhook(args),
        } => {
            let (addr, opts) = match crate::serve::webhook_options(&args) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Outcome::Usage;
                }
            };
            serve_with(args.threads, addr, crate::serve::serve_webhook(addr, opts))
        }
        Command::Serve {
            target:
                ServeTarget::Ws {
                    listen,
                    processes,
                    control_ip,
                    token_env,
                    tls,
                },
        } => match token_env
            .map(|var| {
                std::env::var(&var)
                    .map_err(|_| format!("--token-env: environment variable `{var}` is not set"))
            })
            .transpose()
            .and_then(|token| {
                let identity = crate::serve::server_identity(&tls)?;
                crate::serve::serve_ws(listen, control_ip, processes, token, identity)
            }) {
            Ok(()) => Outcome::Ok,
            Err(e) => {
                eprintln!("error: {e}");
                Outcome::Failed
            }
        },
        Command::Serve {
            target:
                ServeTarget::Sink {
                    listen,
                    threads,
                    tls,
                },
        } => match crate::serve::server_tls(&tls) {
            Ok(tls) => serve_with(threads, listen, crate::serve::serve_sink(listen, tls)),
            Err(e) => usage_error(e),
        },
    }
}

fn serve_with(
    threads: Option<usize>,
    addr: std::net::SocketAddr,
    server: impl std::future::Future<Output = std::io::Result<()>>,
) -> Outcome {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build().expect("tokio runtime");
    match rt.block_on(server) {
        Ok(()) => Outcome::Ok,
        Err(e) => {
            eprintln!("error: cannot serve on {addr}: {e}");
            Outcome::Failed
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Options for runs started from the command line: built-in targets as child processes of this
/// binary, default results under `results/`.
fn run_options(
    out: Option<std::path::PathBuf>,
    progress: ProgressArg,
) -> Result<RunOptions, Outcome> {
    let exe = std::env::current_exe().map_err(|e| {
        eprintln!("error: cannot find this program's path to start targets: {e}");
        Outcome::Failed
    })?;
    Ok(RunOptions {
        out,
        results_root: run::default_results_root(),
        launch: TargetLaunch::Child(exe),
        progress: match progress {
            ProgressArg::Auto => ProgressMode::Auto,
            ProgressArg::Plain => ProgressMode::Plain,
            ProgressArg::Off => ProgressMode::Off,
        },
        interval_ns: 1_000_000_000,
    })
}

/// A scenario with `[network]` (or a sweep that adds it) stops here, before anything runs,
/// when this process cannot set up the emulated link.
fn network_preflight(
    scenario: &scenario::Scenario,
    assignment: Option<&crate::overrides::Assignment>,
) -> Result<(), Outcome> {
    let adds = assignment.is_some_and(|a| a.key == "network" || a.key.starts_with("network."));
    if scenario.network.is_none() && !adds {
        return Ok(());
    }
    match crate::netem::missing_requirements() {
        Some(why) => Err(usage_error(why)),
        None => Ok(()),
    }
}

fn usage_error(message: impl std::fmt::Display) -> Outcome {
    eprintln!("error: {message}");
    Outcome::Usage
}

fn load_scenario(path: &std::path::Path) -> Result<scenario::Scenario, Outcome> {
    scenario::load_or_embedded(path).map_err(|e| {
        eprint!("{e}");
        Outcome::Usage
    })
}

fn capacity_command(args: CapacityArgs) -> Outcome {
    use crate::capacity::{self, CapacityError, CapacityOptions};
    let slo = match crate::slo::parse(&args.slo) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let (step_duration_ns, step_warmup_ns, max_time_ns) =
        (args.step_duration, args.step_warmup, args.max_time);
    if !(args.factor > 1.0 && args.factor <= 100.0) {
        return usage_error(format!(
            "--factor {}: must be above 1 (and at most 100)",
            args.factor
        ));
    }
    if args.max_steps == 0 {
        return usage_error("--max-steps must be at least 1");
    }
    let scenario = match load_scenario(&args.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(code) = network_preflight(&scenario, None) {
        return code;
    }
    let run = match run_options(args.out, args.progress) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let opts = CapacityOptions {
        slo,
        model: args.model,
        step_duration_ns,
        step_warmup_ns,
        start: args.start,
        factor: args.factor,
        max_steps: args.max_steps,
        max_bisect: args.max_bisect,
        resolution: 0.05,
        max_time_ns,
        run,
    };
    match runtime().block_on(capacity::run_capacity(&scenario, &opts)) {
        Ok(outcome) => {
            print!("{}", capacity::render_table(&outcome.result));
            let code = if outcome.interrupted {
                Outcome::Interrupted
            } else if let Some(e) = &outcome.error {
                eprintln!("error: {e}");
                Outcome::Failed
            } else if outcome.result.max_load.is_none() {
                Outcome::CheckFailed
            } else {
                Outcome::Ok
            };
            println!("results: {}", outcome.dir.display());
            code
        }
        Err(e @ CapacityError::Scenario(_)) => {
            eprint!("{e}");
            Outcome::Usage
        }
        Err(e @ (CapacityError::Usage(_) | CapacityError::OutDir { .. })) => usage_error(e),
        Err(e @ (CapacityError::Report(_) | CapacityError::Run { .. })) => {
            eprintln!("error: {e}");
            Outcome::Failed
        }
    }
}

fn sweep_command(
    path: &std::path::Path,
    set: &str,
    out: Option<std::path::PathBuf>,
    progress: ProgressArg,
) -> Outcome {
    use crate::sweep::{self, SweepError};
    let assignment = match crate::overrides::parse_assignment(set) {
        Ok(a) => a,
        Err(e) => return usage_error(e),
    };
    let scenario = match load_scenario(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(code) = network_preflight(&scenario, Some(&assignment)) {
        return code;
    }
    let opts = match run_options(out, progress) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match runtime().block_on(sweep::run_sweep(&scenario, &assignment, &opts)) {
        Ok(outcome) => {
            print!("{}", sweep::render_table(&outcome.result));
            let code = if outcome.interrupted {
                Outcome::Interrupted
            } else if let Some(e) = &outcome.error {
                eprintln!("error: {e}");
                Outcome::Failed
            } else if !outcome.thresholds_failed.is_empty() {
                eprintln!(
                    "thresholds failed in: {}",
                    outcome.thresholds_failed.join(", ")
                );
                Outcome::CheckFailed
            } else {
                Outcome::Ok
            };
            println!("results: {}", outcome.dir.display());
            code
        }
        Err(e @ SweepError::Scenario(_)) => {
            eprint!("{e}");
            Outcome::Usage
        }
        Err(e @ SweepError::OutDir { .. }) => usage_error(e),
        Err(e @ (SweepError::Report(_) | SweepError::Run { .. })) => {
            eprintln!("error: {e}");
            Outcome::Failed
        }
    }
}
