//! `pushbench compare` on saved results: a run against itself is no regression; a run whose
//! webhook deliveries all took twice as long is one, in every format, with JUnit failures.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::V2DeflateSerializer;
use pushbench::record::hist::{decode_hist, new_hist};

use common::{copy_results, example_results as example};

/// Rewrites an interval log with every recorded latency multiplied by `factor`.
fn slow_down(hlog: &Path, factor: u64) {
    let bytes = std::fs::read(hlog).unwrap();
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    {
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut out, &mut serializer)
            .unwrap();
        for entry in IntervalLogIterator::new(&bytes) {
            let LogEntry::Interval(i) = entry.unwrap() else {
                continue;
            };
            let h = decode_hist(i.encoded_histogram()).unwrap();
            let mut slower = new_hist();
            for v in h.iter_recorded() {
                slower
                    .record_n(v.value_iterated_to() * factor, v.count_at_value())
                    .unwrap();
            }
            let tag = i.tag().map(|t| t.as_str().to_string());
            writer
                .write_histogram(
                    &slower,
                    i.start_timestamp(),
                    Duration::from_secs_f64(i.duration().as_secs_f64()),
                    tag.as_deref().and_then(Tag::new),
                )
                .unwrap();
        }
    }
    std::fs::write(hlog, out).unwrap();
}

fn compare(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("compare")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_run_against_itself_is_no_regression() {
    let tmp = tempfile::tempdir().unwrap();
    let e = example();
    let out = compare(&[
        e.to_str().unwrap(),
        e.to_str().unwrap(),
        "--out",
        tmp.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("verdict: ok (0 regressions"), "{stdout}");
    assert!(stdout.contains("bootstrap"), "says how it judged: {stdout}");
    assert!(tmp.path().join("compare_latency_percentiles.png").exists());
    assert!(tmp.path().join("compare.json").exists());
}

#[test]
fn twice_as_slow_deliveries_are_a_regression_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, slow) = (tmp.path().join("base"), tmp.path().join("slow"));
    copy_results(&example(), &base);
    copy_results(&example(), &slow);
    slow_down(&slow.join("webhook.hlog"), 2);
    let junit = tmp.path().join("junit.xml");
    let out_dir = tmp.path().join("cmp");
    let args = |format: &'static str| {
        vec![
            base.to_str().unwrap().to_string(),
            slow.to_str().unwrap().to_string(),
            "--format".into(),
            format.into(),
            "--out".into(),
            out_dir.to_str().unwrap().to_string(),
            "--junit".into(),
            junit.to_str().unwrap().to_string(),
        ]
    };
    let run = |format| {
        let a = args(format);
        compare(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let text = run("text");
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert_eq!(text.status.code(), Some(1), "{stdout}");
    let p50 = stdout
        .lines()
        .find(|l| l.starts_with("webhook") && l.contains("latency p50"))
        .unwrap();
    assert!(p50.contains("+100.") && p50.contains("REGRESSION"), "{p50}");
    // The untouched model is unchanged.
    let ws = stdout
        .lines()
        .find(|l| l.starts_with("websocket") && l.contains("latency p99 "))
        .unwrap();
    assert!(ws.contains(" same "), "{ws}");
    assert_eq!(
        stdout.lines().last().unwrap(),
        format!("results: {}", out_dir.display())
    );

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .collect();
    assert!(!failures.is_empty());
    assert!(failures
        .iter()
        .all(|f| f.parent().unwrap().attribute("classname") == Some("webhook")));

    let md = run("markdown");
    assert_eq!(md.status.code(), Some(1));
    let md = String::from_utf8(md.stdout).unwrap();
    assert!(md.contains("| model | metric | baseline | new | change | verdict |"));
    assert!(md.contains("**regression**") && md.contains("**verdict:** REGRESSION"));
    assert!(!md.contains("results: "), "stdout stays pure markdown");

    let json = run("json");
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["regression"], true);
    assert!(v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["model"] == "webhook" && m["verdict"] == "regression"));
}

#[test]
fn bad_tolerance_and_missing_results_exit_2() {
    let e = example();
    let out = compare(&[
        e.to_str().unwrap(),
        e.to_str().unwrap(),
        "--tolerance",
        "ten",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tolerance"));
    let out = compare(&[e.to_str().unwrap(), "/nonexistent/run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/run"));
}
