//! Helpers shared by the loopback integration tests.
#![allow(dead_code)]

use pushbench::record::results::ModelSummary;
use pushbench::run::{run, ProgressMode, RunOptions, RunReport};
use pushbench::scenario::{parse, Scenario};
use pushbench::servers::launch::TargetLaunch;

/// Parses scenario text; `env:` secrets resolve from the test's own table.
pub fn scenario(src: &str) -> Scenario {
    parse(src, "test", &|name| match name {
        "TEST_SECRET" => Some("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into()),
        _ => None,
    })
    .unwrap_or_else(|p| panic!("bad test scenario: {p:#?}"))
}

/// Runs with in-process targets into a temporary directory.
pub async fn run_in_process(s: &Scenario) -> (RunReport, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        out: Some(dir.path().join("out")),
        results_root: dir.path().to_path_buf(),
        launch: TargetLaunch::InProcess,
        progress: ProgressMode::Off,
        interval_ns: 1_000_000_000,
    };
    let report = run(s, &opts).await.expect("run starts");
    (report, dir)
}

/// The webhook entry of a report.
pub fn webhook(report: &RunReport) -> &ModelSummary {
    report
        .summary
        .models
        .iter()
        .find(|m| m.model.name() == "webhook")
        .expect("webhook model ran")
}

/// The example results committed with the source (a real run of the default scenario).
pub fn example_results() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/example")
}

/// Copies the source files of a results directory (not its rendered outputs).
pub fn copy_results(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in [
        "summary.json",
        "timeseries.csv",
        "webhook.hlog",
        "websocket.hlog",
        "scenario.toml",
    ] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}
