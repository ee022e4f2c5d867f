//! `sweep`: one run per value, both models, rows and charts; a bad key or value stops it
//! before anything runs.

mod common;

use common::pushbench;

use std::path::Path;

use common::scenario;
use pushbench::overrides::parse_assignment;
use pushbench::report::capacity_charts::sweep_chart_stems;
use pushbench::run::{ProgressMode, RunOptions};
use pushbench::servers::launch::TargetLaunch;
use pushbench::sweep::run_sweep;

const BOTH: &str = r#"
name = "sw"
[workload]
events_per_second = 50
subscribers = 20
duration = "1s"
[webhook]
pool = 4
[websocket]
mode = "push"
connect_rate = 2000
drain = "500ms"
"#;

#[tokio::test]
async fn two_values_give_one_row_per_value_per_model_and_the_charts() {
    let s = scenario(BOTH);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let opts = RunOptions {
        out: Some(out.clone()),
        results_root: dir.path().to_path_buf(),
        launch: TargetLaunch::InProcess,
        progress: ProgressMode::Off,
        interval_ns: 1_000_000_000,
    };
    let set = parse_assignment("workload.events_per_second=50,100").unwrap();
    let outcome = run_sweep(&s, &set, &opts).await.expect("the sweep runs");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    let r = &outcome.result;
    assert_eq!(r.rows.len(), 4, "{:#?}", r.rows);
    for (value, rate) in [("50", 50), ("100", 100)] {
        for model in ["webhook", "websocket"] {
            let row = r
                .rows
                .iter()
                .find(|row| row.value == value && row.model.name() == model)
                .unwrap_or_else(|| panic!("{model} at {value}"));
            assert_eq!(row.events, rate, "{model} at {value} events/s for 1 s");
            assert_eq!(row.delivered, rate, "{model} at {value}");
            assert!(out.join(&row.dir).join("summary.json").is_file());
        }
    }
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4, "{csv}");
    assert!(csv.starts_with("key,value,model,"), "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["key"], "workload.events_per_second");
    assert_eq!(json["rows"].as_array().unwrap().len(), 4);
    assert!(json["crossovers"].is_array());
    for stem in sweep_chart_stems() {
        for ext in ["svg", "png"] {
            let f = out.join(format!("{stem}.{ext}"));
            assert!(
                f.metadata().map(|m| m.len() > 1000).unwrap_or(false),
                "{f:?}"
            );
        }
    }
    let svg = std::fs::read_to_string(out.join("sweep_cpu.svg")).unwrap();
    assert!(
        svg.contains("webhook") && svg.contains("websocket"),
        "legend names both"
    );

    // `pushbench report` re-renders the directory from its saved files alone.
    let again = common::rerender(&out, "sweep");
    assert_eq!(again.after["rows"], again.before["rows"]);
    for stem in sweep_chart_stems() {
        assert!(again.dir.join(format!("{stem}.png")).is_file(), "{stem}");
    }
    assert!(again.dir.join(&r.rows[0].dir).join("report.html").is_file());
}

#[test]
fn a_bad_key_or_value_is_a_scenario_error_naming_the_key_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), BOTH).unwrap();
    for (set, want) in [
        (
            "workload.subscriberz=1,2",
            "`workload.subscriberz`: unknown key",
        ),
        (
            "workload.subscribers=10,many",
            "`workload.subscribers`: expected an integer",
        ),
        (
            "workload.events_per_second=10,0",
            "`workload.events_per_second`: must be greater than 0",
        ),
        (
            "webhok.pool=1,2",
            "`webhok.pool`: the scenario has no [webhok] table",
        ),
        ("workload.subscribers", "expected KEY=VALUE"),
    ] {
        let out = pushbench(&["sweep", "s.toml", "--set", set], dir.path());
        assert_eq!(out.status.code(), Some(2), "{set}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{set}: {err}");
        assert!(!dir.path().join("results").exists(), "{set}: nothing ran");
    }
}

#[test]
fn a_run_that_cannot_proceed_stops_the_sweep_with_exit_3_naming_the_run_and_keeps_the_files() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens there here.
    std::fs::write(
        dir.path().join("s.toml"),
        "name = \"down\"\n[workload]\nevents_per_second = 10\nduration = \"1s\"\n[webhook]\nurl = \"http://127.0.0.1:9/hooks/{subscriber}\"\nsignature = \"none\"\n",
    )
    .unwrap();
    let out = pushbench(
        &[
            "sweep",
            "s.toml",
            "--set",
            "workload.events_per_second=10,20",
            "--out",
            "sw",
            "--progress",
            "off",
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("the run with workload.events_per_second=10 failed: target")
            && err.contains("is unreachable"),
        "says which run failed and why: {err}"
    );
    assert!(!err.contains("cannot write"), "not a write error: {err}");
    assert!(
        !err.contains("run 2/2"),
        "the sweep stopped at the first run: {err}"
    );
    let sw = dir.path().join("sw");
    assert!(sw.join("sweep.json").is_file() && sw.join("run-01-10").is_dir());
    assert!(String::from_utf8_lossy(&out.stdout)
        .trim_end()
        .ends_with(&format!("results: {}", Path::new("sw").display())));
}
