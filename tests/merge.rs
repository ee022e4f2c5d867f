//! One scenario run as three shard processes on this machine (`run --shard I/3`, one start
//! instant), merged with `pushbench merge`: the merged counts are the shards' sums, its
//! distributions those of the union of the shards' histograms, its events and subscribers the
//! unsharded scenario's; directories that are not one run's shards are refused with exit 2.

mod common;

use common::pushbench;

use std::path::{Path, PathBuf};
use std::process::Command;

use pushbench::record::hist::{new_hist, Percentiles};
use pushbench::record::results::Summary;
use pushbench::report::load::load;

const SCENARIO: &str = r#"
name = "sharded"
[workload]
events_per_second = 300
subscribers = 31
duration = "2s"
warmup = "1s"
[webhook]
pool = 8
[websocket]
[thresholds]
"webhook.failed" = "== 0"
"websocket.delivered" = "> 0"
"#;

fn summary(dir: &Path) -> Summary {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

/// Runs the three shards at once, starting together; returns their directories.
fn run_shards(dir: &Path) -> Vec<PathBuf> {
    std::fs::write(dir.join("s.toml"), SCENARIO).unwrap();
    let start_at = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2)
    .to_string();
    let children: Vec<_> = (0..3)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_pushbench"))
                .args([
                    "run",
                    "s.toml",
                    "--shard",
                    &format!("{i}/3"),
                    "--start-at",
                    &start_at,
                    "--progress",
                    "off",
                    "--out",
                    &format!("shard{i}"),
                ])
                .current_dir(dir)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    (0..3).map(|i| dir.join(format!("shard{i}"))).collect()
}

#[test]
fn three_shards_merge_into_exactly_the_whole_run() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = run_shards(tmp.path());
    let parts: Vec<Summary> = shards.iter().map(|d| summary(d)).collect();
    let starts: Vec<f64> = parts
        .iter()
        .map(|s| s.shard.as_ref().unwrap().started_s)
        .collect();
    for (i, s) in parts.iter().enumerate() {
        let info = s.shard.as_ref().unwrap();
        assert_eq!((info.index, info.count), (i as u64, 3));
    }
    let out = pushbench(
        &["merge", "shard2", "shard0", "shard1", "--out", "merged"],
        tmp.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("merged 3 shards"), "{stdout}");
    let merged_dir = tmp.path().join("merged");
    let merged = summary(&merged_dir);
    assert_eq!(merged.shards.len(), 3);
    assert_eq!(
        merged.shards.iter().map(|s| s.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    // Started together: the agreed instant, give or take a scheduler tick.
    let spread = starts.iter().cloned().fold(f64::MIN, f64::max)
        - starts.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 0.5, "{starts:?}");

    // The unsharded scenario's events and subscribers, split exactly.
    let whole = pushbench::scenario::parse(SCENARIO, "t", &|_| None).unwrap();
    let events = whole.workload.measured_deliveries(whole.seed);
    assert_eq!(events, 600);
    for (i, m) in merged.models.iter().enumerate() {
        let sum = |f: fn(&pushbench::record::results::ModelSummary) -> u64| -> u64 {
            parts.iter().map(|p| f(&p.models[i])).sum()
        };
        assert_eq!(m.events, events, "{}", m.model);
        assert_eq!(m.events, sum(|m| m.events));
        assert_eq!(m.delivered, sum(|m| m.delivered));
        assert_eq!(m.failed, sum(|m| m.failed));
        assert_eq!(m.connections.opened, sum(|m| m.connections.opened));
        assert_eq!(m.connections.peak, sum(|m| m.connections.peak));
        for (j, p) in parts.iter().enumerate() {
            assert!(
                p.models[i].events > 0 && p.models[i].events < events,
                "shard {j}"
            );
        }
    }
    let ws = merged
        .models
        .iter()
        .find(|m| m.model.name() == "websocket")
        .unwrap();
    assert_eq!(ws.connections.target, 31, "every subscriber held once");
    assert_eq!(ws.websocket.as_ref().unwrap().gaps, 0);

    // Every histogram: the merged log holds the union of the shards' logs, and the summary's
    // percentiles are those of that union.
    let merged_run = load(&merged_dir).unwrap();
    let shard_runs: Vec<_> = shards.iter().map(|d| load(d).unwrap()).collect();
    for (model, hists) in &merged_run.hists {
        assert!(
            hists.by_tag.len() >= 4,
            "{model}: {:?}",
            hists.by_tag.keys()
        );
        for (tag, h) in &hists.by_tag {
            let mut union = new_hist();
            for r in &shard_runs {
                if let Some(s) = r.hists[model].by_tag.get(tag) {
                    union.add(s).unwrap();
                }
            }
            assert_eq!(h.len(), union.len(), "{model} {tag}: counts add up");
            assert_eq!(Percentiles::of(h), Percentiles::of(&union), "{model} {tag}");
        }
        let m = merged.models.iter().find(|m| m.model == *model).unwrap();
        let latency = &hists.by_tag["latency"];
        assert_eq!(m.latency_us, Percentiles::of(latency), "{model}");
        assert_eq!(
            m.latency_us.count, m.delivered,
            "{model}: one latency per delivery"
        );
    }
    // Thresholds judged on the merged figures, the report rendered.
    assert_eq!(merged.thresholds.len(), 2);
    assert!(
        merged.thresholds.iter().all(|t| t.pass),
        "{:?}",
        merged.thresholds
    );
    assert!(merged_dir.join("report.html").is_file());
    let csv = std::fs::read_to_string(merged_dir.join("timeseries.csv")).unwrap();
    let offered: u64 = csv::Reader::from_reader(csv.as_bytes())
        .deserialize::<pushbench::record::results::TimeseriesRow>()
        .map(|r| r.unwrap().offered)
        .sum();
    let offered_parts: u64 = shard_runs
        .iter()
        .flat_map(|r| r.timeseries.iter().map(|row| row.offered))
        .sum();
    assert_eq!(offered, offered_parts, "time series summed, nothing lost");

    // Not one run's shards: refused before anything is written.
    for (args, says) in [
        (
            &["merge", "shard0", "shard1", "--out", "m2"][..],
            "shard 2 of 3 missing",
        ),
        (
            &["merge", "shard0", "shard0", "shard1", "--out", "m3"][..],
            "shard 0 twice",
        ),
        (
            &["merge", "shard0", "merged", "--out", "m4"][..],
            "is not a shard's results",
        ),
    ] {
        let out = pushbench(args, tmp.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let other = tmp.path().join("shard1");
    let text = std::fs::read_to_string(other.join("scenario.toml")).unwrap();
    std::fs::write(other.join("scenario.toml"), text.replace("300", "301")).unwrap();
    let out = pushbench(
        &["merge", "shard0", "shard1", "shard2", "--out", "m5"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("different scenarios"));
}
