//! Entry point: parse the command line, call the library, map outcomes to exit codes
//! (0 ok, 1 threshold failed, 2 usage or scenario error, 3 run could not proceed, 130 Ctrl-C).

use std::process::ExitCode;

use clap::Parser;

use pushbench::cli::{Cli, Command, ProgressArg, ServeTarget};
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
        Command::Run {
            scenario,
            out,
            progress,
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
