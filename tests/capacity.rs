//! `capacity` against the built-in receiver, where the answer is known by hand, and the
//! command's refusals (bad objective, ambiguous model) before anything runs.

mod common;

use common::pushbench;

use common::scenario;
use pushbench::capacity::bottleneck::Bottleneck;
use pushbench::capacity::{run_capacity, CapacityOptions, CapacityResult};
use pushbench::run::{ProgressMode, RunOptions};
use pushbench::servers::launch::TargetLaunch;

/// A pool of 4 keep-alive connections to a receiver that takes 40 ms per answer can carry at
/// most pool / delay = 100 deliveries per second; past that, deliveries queue and latency
/// (timed from the intended send) climbs without bound.
const POOL_OVER_DELAY: f64 = 4.0 / 0.040;

#[tokio::test]
async fn finds_pool_over_delay_for_the_builtin_receiver_and_blames_the_target() {
    let s = scenario(
        r#"
name = "pool4"
[workload]
events_per_second = 25
subscribers = 100
duration = "30s"
[webhook]
pool = 4
[webhook.receiver]
delay = "40ms"
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cap");
    let opts = CapacityOptions {
        // Long answers and a low rate: the limit is the pool, by a margin no CI machine's
        // scheduling noise (a few ms) can blur.
        slo: pushbench::slo::parse("p99 < 200ms, failed < 0.1%").unwrap(),
        model: None,
        step_duration_ns: 2_000_000_000,
        step_warmup_ns: 500_000_000,
        start: None,
        factor: 2.0,
        max_steps: 6,
        max_bisect: 5,
        resolution: 0.05,
        max_time_ns: 120_000_000_000,
        run: RunOptions {
            out: Some(out.clone()),
            results_root: dir.path().to_path_buf(),
            launch: TargetLaunch::InProcess,
            progress: ProgressMode::Off,
            interval_ns: 1_000_000_000,
        },
    };
    let outcome = run_capacity(&s, &opts).await.expect("the search runs");
    assert!(outcome.error.is_none(), "{:?}", outcome.error);
    let r = &outcome.result;
    let max = r.max_load.expect("some load held the objective");
    eprintln!("capacity found {max} events/s; pool / delay = {POOL_OVER_DELAY}");
    assert!(
        (0.5 * POOL_OVER_DELAY..=1.2 * POOL_OVER_DELAY).contains(&max),
        "max {max} events/s should be near pool / delay = {POOL_OVER_DELAY}: {:#?}",
        r.steps
    );
    assert!(r.first_failing_load.unwrap() > max);
    assert_eq!(r.bottleneck, Bottleneck::Target, "{}", r.message);
    assert!(r.message.contains("pool"), "{}", r.message);
    assert_eq!((r.unit.as_str(), r.model.name()), ("events/s", "webhook"));
    // Bounded: at most the geometric steps plus the bisections.
    assert!(r.steps.len() <= 6 + 5, "{} steps", r.steps.len());
    assert_eq!(&r.steps[0].phase, "step");
    assert_eq!(r.steps[0].load, 25.0, "starts at the scenario's rate");

    // What a user opens afterwards.
    let saved: CapacityResult =
        serde_json::from_str(&std::fs::read_to_string(out.join("capacity.json")).unwrap()).unwrap();
    assert_eq!(saved.max_load, Some(max));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("capacity.json")).unwrap()).unwrap();
    assert_eq!(json["bottleneck"], "target");
    assert_eq!(json["unit"], "events/s");
    let csv = std::fs::read_to_string(out.join("capacity.csv")).unwrap();
    assert_eq!(csv.lines().count(), r.steps.len() + 1, "{csv}");
    assert!(csv.starts_with("step,phase,load,unit,pass,p50_us,p99_us,p999_us"));
    for f in ["capacity.svg", "capacity.png"] {
        assert!(out.join(f).metadata().unwrap().len() > 1000, "{f}");
    }
    let svg = std::fs::read_to_string(out.join("capacity.svg")).unwrap();
    assert!(svg.contains("knee: max"), "the knee is marked");
    for step in &r.steps {
        let summary = out.join(&step.dir).join("summary.json");
        assert!(summary.is_file(), "{} has its own results", step.dir);
        assert!(step.dir.starts_with(&format!("step-{:02}-", step.step)));
    }
    // Steps are short runs, whatever the scenario's own duration.
    assert_eq!(r.steps[0].events, 50, "25 events/s for 2 s");

    // `pushbench report` re-renders the directory from its saved files alone.
    let again = common::rerender(&out, "capacity");
    assert_eq!(again.after["max_load"], again.before["max_load"]);
    assert_eq!(again.after["message"], again.before["message"]);
    assert!(again.dir.join("capacity.png").metadata().unwrap().len() > 1000);
    assert!(again
        .dir
        .join(&r.steps[0].dir)
        .join("report.html")
        .is_file());
    assert!(again.stdout.contains("capacity of webhook (pool4)"));
}

const BOTH: &str = r#"
[workload]
events_per_second = 100
duration = "1s"
[webhook]
pool = 4
[websocket]
mode = "push"
"#;

#[test]
fn a_bad_objective_is_a_usage_error_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), BOTH).unwrap();
    for (slo, want) in [
        ("p99 < 50", "needs a time unit"),
        ("p98 < 50ms", "unknown metric"),
        ("latency is fine", "expected METRIC OP VALUE"),
    ] {
        let out = pushbench(
            &["capacity", "s.toml", "--model", "webhook", "--slo", slo],
            dir.path(),
        );
        assert_eq!(out.status.code(), Some(2), "{slo}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{slo}: {err}");
        assert!(!dir.path().join("results").exists(), "nothing ran");
    }
}

#[test]
fn a_scenario_with_both_models_needs_model_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), BOTH).unwrap();
    let out = pushbench(&["capacity", "s.toml", "--slo", "p99 < 50ms"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--model webhook or --model websocket"),
        "{err}"
    );
    assert!(!dir.path().join("results").exists(), "nothing ran");
}

#[test]
fn capacity_steps_the_fallback_models_too() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.toml"),
        "[workload]\nevents_per_second = 50\nsubscribers = 20\nduration = \"1s\"\n[sse]\n[longpoll]\nhold = \"1s\"\n",
    )
    .unwrap();
    // Two models: the one to step must be named, and the message says how.
    let out = pushbench(&["capacity", "s.toml", "--slo", "p99 < 50ms"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--model sse or --model longpoll"), "{err}");
    let out = pushbench(
        &[
            "capacity",
            "s.toml",
            "--slo",
            "p99 < 1s",
            "--model",
            "longpoll",
            "--max-steps",
            "2",
            "--step-duration",
            "1s",
            "--step-warmup",
            "0s",
            "--out",
            "cap",
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("cap/capacity.json"))
            .unwrap_or_else(|e| panic!("{e}: {err}")),
    )
    .unwrap();
    assert_eq!(json["model"], "longpoll", "{json}");
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{json}");
    for step in steps {
        assert!(step["events"].as_u64().unwrap() > 0, "{step}");
        assert_eq!(step["failed"], 0, "{step}");
    }
}

#[test]
fn sigterm_after_a_step_stops_the_search_with_130_and_writes_the_steps_so_far() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "name = \"cap\"\n[workload]\nevents_per_second = 100\nduration = \"1s\"\n[webhook]\npool = 4\n",
    )
    .unwrap();
    let mut child = common::spawn_pushbench(
        &[
            "capacity",
            "c.toml",
            "--slo",
            "p99 < 5s",
            "--step-duration",
            "1s",
            "--step-warmup",
            "0s",
            "--max-steps",
            "6",
            "--out",
            "cap",
        ],
        dir.path(),
    );
    // The first step's verdict: the signal lands between steps (or as the second one starts,
    // where that run's own handler takes it); both must stop the search.
    let (_, stderr) = common::stderr_until(
        &mut child,
        |l| l.contains("-> pass"),
        "its first step's verdict",
    );
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (out, _) = common::finish(child, stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("search stopped: interrupted"), "{stdout}");
    assert!(stdout.trim_end().ends_with("results: cap"), "{stdout}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("cap/capacity.json")).unwrap())
            .unwrap();
    let steps = saved["steps"].as_array().expect("steps").len();
    assert!(
        (1..=2).contains(&steps),
        "the search stopped: {steps} steps"
    );
    assert!(!dir.path().join("cap/step-03-400").exists());
}
