//! Entry point: parse the command line, call the library, map outcomes to exit codes
//! (0 ok, 1 threshold failed, 2 usage or scenario error, 3 run could not proceed, 130 Ctrl-C).

use std::process::ExitCode;

use clap::Parser;

use pushbench::cli::{CapacityArgs, Cli, Command, CompareFormat, ProgressArg, ServeTarget};
use pushbench::report::{junit, load};
use pushbench::run::{self, ProgressMode, RunError, RunOptions};
use pushbench::scenario;
use pushbench::servers::launch::TargetLaunch;

fn main() -> ExitCode {
    // Every command may hold many sockets; children inherit the raised limit.
    pushbench::websocket::model::raise_open_files_limit();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli.command {
        Command::Worker { .. } => match pushbench::websocket::workers::run_worker_process() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(3)
            }
        },
        Command::Report { dirs, out } => {
            let out = out.unwrap_or_else(|| match dirs.as_slice() {
                [one] => one.clone(),
                _ => {
                    let now = pushbench::clock::real_ns() / 1_000_000_000;
                    let stamp = pushbench::record::results::utc_stamps(now).0;
                    run::default_results_root().join(format!("report-{stamp}"))
                }
            });
            match pushbench::report::render(&dirs, &out) {
                Ok(page) => {
                    println!("report: {}", page.display());
                    println!("results: {}", out.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    let unreadable = matches!(
                        e,
                        pushbench::report::ReportError::Read { .. }
                            | pushbench::report::ReportError::Parse { .. }
                    );
                    ExitCode::from(if unreadable { 2 } else { 3 })
                }
            }
        }
        Command::Validate { scenario } => match scenario::load(&scenario) {
            Ok(s) => {
                println!("{}: ok (scenario \"{}\")", scenario.display(), s.name);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Compare {
            baseline,
            new,
            tolerance,
            format,
            junit,
            out,
        } => compare(&baseline, &new, &tolerance, format, junit.as_deref(), out),
        Command::Run {
            scenario,
            out,
            progress,
            junit,
        } => {
            let scenario = match scenario {
                Some(path) => match scenario::load(&path) {
                    Ok(s) => s,
                    Err(e) => {
                        eprint!("{e}");
                        return ExitCode::from(2);
                    }
                },
                None => scenario::default_scenario(),
            };
            let opts = match run_options(out, progress) {
                Ok(o) => o,
                Err(code) => return code,
            };
            match runtime().block_on(run::run(&scenario, &opts)) {
                Ok(report) => {
                    print!("{}", pushbench::report::table::render(&report.summary));
                    if let Some(path) = &junit {
                        let cases = junit::threshold_cases(&report.summary.thresholds);
                        let xml = junit::document("pushbench thresholds", &cases);
                        if let Err(e) = std::fs::write(path, xml) {
                            eprintln!("error: cannot write {}: {e}", path.display());
                        }
                    }
                    let code = if report.interrupted() {
                        130
                    } else if let Some(e) = &report.error {
                        eprintln!("error: {e}");
                        3
                    } else if !report.thresholds_pass() {
                        1
                    } else {
                        0
                    };
                    println!("results: {}", report.dir.display());
                    ExitCode::from(code)
                }
                Err(e @ RunError::OutDir { .. }) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(3)
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
            let (addr, opts) = match pushbench::serve::webhook_options(&args) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            serve_with(
                args.threads,
                addr,
                pushbench::serve::serve_webhook(addr, opts),
            )
        }
        Command::Serve {
            target: ServeTarget::Ws { listen, processes },
        } => match pushbench::serve::serve_ws(&listen, processes) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(3)
            }
        },
        Command::Serve {
            target: ServeTarget::Sink { listen, threads },
        } => match listen.parse() {
            Ok(addr) => serve_with(threads, addr, pushbench::serve::serve_sink(addr)),
            Err(_) => {
                eprintln!("error: --listen: \"{listen}\" is not an address like 127.0.0.1:8080");
                ExitCode::from(2)
            }
        },
    }
}

fn serve_with(
    threads: Option<usize>,
    addr: std::net::SocketAddr,
    server: impl std::future::Future<Output = std::io::Result<()>>,
) -> ExitCode {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    let rt = rt.enable_all().build().expect("tokio runtime");
    match rt.block_on(server) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot serve on {addr}: {e}");
            ExitCode::from(3)
        }
    }
}

/// `pushbench compare`: 0 no regression, 1 regression, 2 unreadable input or bad option.
fn compare(
    baseline: &std::path::Path,
    new: &std::path::Path,
    tolerance: &str,
    format: CompareFormat,
    junit_path: Option<&std::path::Path>,
    out: Option<std::path::PathBuf>,
) -> ExitCode {
    let text = tolerance.trim();
    let tolerance = match text.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
        None => text.parse::<f64>(),
    };
    let tolerance = match tolerance {
        Ok(t) if (0.0..10.0).contains(&t) => t,
        _ => {
            eprintln!("error: --tolerance: \"{text}\" is not a relative change like 10% or 0.1");
            return ExitCode::from(2);
        }
    };
    let (base, new_run) = match (load::load(baseline), load::load(new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let lines = pushbench::compare::compare(&base, &new_run, tolerance);
    if lines.is_empty() {
        eprintln!(
            "error: {} and {} have no model in common to compare",
            baseline.display(),
            new.display()
        );
        return ExitCode::from(2);
    }
    let regressed = pushbench::compare::regressed(&lines);
    let json = serde_json::json!({
        "baseline": base.label,
        "new": new_run.label,
        "tolerance": tolerance,
        "method": pushbench::compare::method(tolerance),
        "regression": regressed,
        "metrics": lines,
    });
    let out = out.unwrap_or_else(|| new.to_path_buf());
    let mut written = std::fs::create_dir_all(&out)
        .and_then(|()| {
            std::fs::write(
                out.join("compare.json"),
                serde_json::to_string_pretty(&json).unwrap_or_default() + "\n",
            )
        })
        .map_err(|e| e.to_string());
    if written.is_ok() {
        // The two latency spectra in one picture, for the pull request.
        let mut runs = [base.clone(), new_run.clone()];
        runs[0].label = format!("baseline {}", runs[0].label);
        runs[1].label = format!("new {}", runs[1].label);
        written = pushbench::report::charts::render_one(
            pushbench::report::charts::Chart::Percentiles,
            &runs,
            &out,
            "compare_latency_percentiles",
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
    }
    match format {
        CompareFormat::Text => print!(
            "{}",
            pushbench::compare::render_text(&base, &new_run, &lines, tolerance)
        ),
        CompareFormat::Markdown => print!(
            "{}",
            pushbench::compare::render_markdown(&base, &new_run, &lines, tolerance)
        ),
        CompareFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ),
    }
    if let Some(path) = junit_path {
        let cases: Vec<junit::Case> = lines
            .iter()
            .map(|l| junit::Case {
                class: l.model.to_string(),
                name: l.metric.clone(),
                failure: (l.verdict == pushbench::compare::Verdict::Regression).then(|| {
                    format!(
                        "{} {} regressed {:+.1}% (baseline {:.1}, new {:.1} {})",
                        l.model,
                        l.metric,
                        l.change * 100.0,
                        l.baseline.value,
                        l.new.value,
                        l.unit
                    )
                }),
            })
            .collect();
        if let Err(e) = std::fs::write(path, junit::document("pushbench compare", &cases)) {
            eprintln!("error: cannot write {}: {e}", path.display());
        }
    }
    if let Err(e) = written {
        eprintln!(
            "warning: cannot write compare.json and its chart into {}: {e}",
            out.display()
        );
    }
    // stdout stays valid markdown / JSON; the directory line goes where a human reads it.
    let last = format!("results: {}", out.display());
    if format == CompareFormat::Text {
        println!("{last}");
    } else {
        eprintln!("{last}");
    }
    ExitCode::from(if regressed { 1 } else { 0 })
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
) -> Result<RunOptions, ExitCode> {
    let exe = std::env::current_exe().map_err(|e| {
        eprintln!("error: cannot find this program's path to start targets: {e}");
        ExitCode::from(3)
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

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

fn load_scenario(path: &std::path::Path) -> Result<scenario::Scenario, ExitCode> {
    scenario::load(path).map_err(|e| {
        eprint!("{e}");
        ExitCode::from(2)
    })
}

fn capacity_command(args: CapacityArgs) -> ExitCode {
    use pushbench::capacity::{self, CapacityError, CapacityOptions};
    let slo = match pushbench::slo::parse(&args.slo) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let duration = |flag: &str, text: &str| {
        scenario::parse_duration_ns(text)
            .map_err(|e| format!("{flag} {text:?}: {e}"))
            .and_then(|ns| {
                if ns == 0 && flag != "--step-warmup" {
                    Err(format!("{flag} must be longer than 0s"))
                } else {
                    Ok(ns)
                }
            })
    };
    let (step_duration_ns, step_warmup_ns, max_time_ns) = match (
        duration("--step-duration", &args.step_duration),
        duration("--step-warmup", &args.step_warmup),
        duration("--max-time", &args.max_time),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return usage_error(e),
    };
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
                130
            } else if let Some(e) = &outcome.error {
                eprintln!("error: {e}");
                3
            } else if outcome.result.max_load.is_none() {
                1
            } else {
                0
            };
            println!("results: {}", outcome.dir.display());
            ExitCode::from(code)
        }
        Err(e @ CapacityError::Scenario(_)) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
        Err(e @ (CapacityError::Usage(_) | CapacityError::OutDir { .. })) => usage_error(e),
        Err(e @ (CapacityError::Write { .. } | CapacityError::Run { .. })) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}

fn sweep_command(
    path: &std::path::Path,
    set: &str,
    out: Option<std::path::PathBuf>,
    progress: ProgressArg,
) -> ExitCode {
    use pushbench::sweep::{self, SweepError};
    let assignment = match pushbench::overrides::parse_assignment(set) {
        Ok(a) => a,
        Err(e) => return usage_error(e),
    };
    let scenario = match load_scenario(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let opts = match run_options(out, progress) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match runtime().block_on(sweep::run_sweep(&scenario, &assignment, &opts)) {
        Ok(outcome) => {
            print!("{}", sweep::render_table(&outcome.result));
            let code = if outcome.interrupted {
                130
            } else if let Some(e) = &outcome.error {
                eprintln!("error: {e}");
                3
            } else if !outcome.thresholds_failed.is_empty() {
                eprintln!(
                    "thresholds failed in: {}",
                    outcome.thresholds_failed.join(", ")
                );
                1
            } else {
                0
            };
            println!("results: {}", outcome.dir.display());
            ExitCode::from(code)
        }
        Err(e @ SweepError::Scenario(_)) => {
            eprint!("{e}");
            ExitCode::from(2)
        }
        Err(e @ SweepError::OutDir { .. }) => usage_error(e),
        Err(e @ (SweepError::Write { .. } | SweepError::Run { .. })) => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
    }
}
