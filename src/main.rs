//! Entry point: parse the command line, call the library, map outcomes to exit codes
//! (0 ok, 1 threshold failed, 2 usage or scenario error, 3 run could not proceed, 130 Ctrl-C).

use std::process::ExitCode;

use clap::Parser;

use pushbench::cli::{Cli, Command, CompareFormat, ProgressArg, ServeTarget};
use pushbench::report::{junit, load};
use pushbench::run::{self, ProgressMode, RunError, RunOptions};
use pushbench::scenario;
use pushbench::target::launch::TargetLaunch;

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
            let exe = match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: cannot find this program's path to start targets: {e}");
                    return ExitCode::from(3);
                }
            };
            let opts = RunOptions {
                out,
                results_root: run::default_results_root(),
                launch: TargetLaunch::Child(exe),
                progress: match progress {
                    ProgressArg::Auto => ProgressMode::Auto,
                    ProgressArg::Plain => ProgressMode::Plain,
                    ProgressArg::Off => ProgressMode::Off,
                },
                interval_ns: 1_000_000_000,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match rt.block_on(run::run(&scenario, &opts)) {
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
                class: l.model.clone(),
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
