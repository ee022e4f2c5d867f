//! `pushbench merge`: the results directories of a run's shards back into one, as if one
//! machine had run the whole scenario. Counts are summed; every distribution is merged from the
//! shards' `.hlog` histograms (never percentiles averaged); time series are summed by
//! wall-clock second; thresholds are judged on the merged figures; the report is rendered from
//! the merged files like any run's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use crate::model_kind::ModelKind;
use crate::record::hist::{decode_hist, new_hist, Percentiles};
use crate::record::results::{write_summary, ModelSummary, Summary, TimeseriesRow, WsSummary};
use crate::report::load::{load, RunData};
use crate::shards::ShardInfo;

/// Why shards could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The directories do not make one run (exit 2): different scenarios, a shard missing or
    /// twice, mixed versions, a directory that is no shard.
    #[error("{0}")]
    Mismatch(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
}

/// What a merge wrote.
#[derive(Debug)]
pub struct Merged {
    /// The merged directory.
    pub dir: PathBuf,
    /// Its `summary.json`.
    pub summary: Summary,
}

/// One interval of a shard's log: the absolute start (unix seconds, rounded to the interval)
/// and the tag it belongs to.
type IntervalKey = (i64, String);

/// Merges the shard directories `dirs` into `out`.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<Merged, MergeError> {
    let runs: Vec<RunData> = dirs
        .iter()
        .map(|d| load(d).map_err(|e| MergeError::Io(e.to_string())))
        .collect::<Result<_, _>>()?;
    let shards = check(&runs)?;
    std::fs::create_dir_all(out)
        .map_err(|e| MergeError::Io(format!("cannot create {}: {e}", out.display())))?;

    let first = &runs[0].summary;
    let earliest = shards
        .iter()
        .map(|s| s.started_s)
        .fold(f64::INFINITY, f64::min);
    let mut models = Vec::new();
    for (i, m) in first.models.iter().enumerate() {
        let parts: Vec<&ModelSummary> = runs.iter().map(|r| &r.summary.models[i]).collect();
        let hists = merged_hists(&runs, m.model)?;
        models.push(merge_model(&parts, &hists));
        write_hlog(&runs, m.model, out, earliest)?;
    }
    let scenario_text = runs[0].scenario_text.clone().unwrap_or_default();
    std::fs::write(out.join("scenario.toml"), &scenario_text)
        .map_err(|e| MergeError::Io(format!("cannot write scenario.toml: {e}")))?;
    write_timeseries(&runs, out, earliest)?;

    let mut summary = Summary {
        started_at: runs
            .iter()
            .map(|r| r.summary.started_at.clone())
            .min()
            .unwrap_or_default(),
        interrupted: runs.iter().any(|r| r.summary.interrupted),
        incomplete: {
            let why: Vec<String> = runs
                .iter()
                .filter_map(|r| {
                    let s = r.summary.shard.as_ref()?;
                    Some(format!(
                        "shard {}: {}",
                        s.index,
                        r.summary.incomplete.as_ref()?
                    ))
                })
                .collect();
            (!why.is_empty()).then(|| why.join("; "))
        },
        models,
        thresholds: Vec::new(),
        shard: None,
        shards,
        ..first.clone()
    };
    // Thresholds are judged on the merged figures, as the scenario states them. Secrets do not
    // matter here: any `env:` name reads as a placeholder.
    if let Ok(scenario) = crate::scenario::parse(&scenario_text, "merge", &|_| Some("-".into())) {
        summary.thresholds = crate::thresholds::evaluate(&scenario.thresholds, &summary.models);
    }
    write_summary(out, &summary)
        .map_err(|e| MergeError::Io(format!("cannot write the summary: {e}")))?;
    crate::report::render(&[out.to_path_buf()], out).map_err(|e| MergeError::Io(e.to_string()))?;
    Ok(Merged {
        dir: out.to_path_buf(),
        summary,
    })
}

/// The shards' records, in index order, once the directories are checked to be one run.
fn check(runs: &[RunData]) -> Result<Vec<ShardInfo>, MergeError> {
    let mismatch = |m: String| Err(MergeError::Mismatch(m));
    let Some(first) = runs.first() else {
        return mismatch("merge needs the shards' results directories".into());
    };
    let mut shards = Vec::new();
    for r in runs {
        let Some(s) = &r.summary.shard else {
            return mismatch(format!(
                "{} is not a shard's results (no `shard` in its summary.json; run with --shard I/N)",
                r.dir.display()
            ));
        };
        if r.summary.version != first.summary.version {
            return mismatch(format!(
                "{} was written by pushbench {} and {} by {}: merge results of one version",
                first.dir.display(),
                first.summary.version,
                r.dir.display(),
                r.summary.version
            ));
        }
        if r.scenario_text != first.scenario_text {
            return mismatch(format!(
                "{} and {} ran different scenarios (their scenario.toml differ)",
                first.dir.display(),
                r.dir.display()
            ));
        }
        let kinds = |r: &RunData| r.summary.models.iter().map(|m| m.model).collect::<Vec<_>>();
        if kinds(r) != kinds(first) {
            return mismatch(format!(
                "{} and {} ran different models (one was cut short?)",
                first.dir.display(),
                r.dir.display()
            ));
        }
        shards.push((s.clone(), r.dir.clone()));
    }
    let count = shards[0].0.count;
    if let Some((s, dir)) = shards.iter().find(|(s, _)| s.count != count) {
        return mismatch(format!(
            "{} is shard {} of {}, the others of {count}",
            dir.display(),
            s.index,
            s.count
        ));
    }
    shards.sort_by_key(|(s, _)| s.index);
    for pair in shards.windows(2) {
        if pair[0].0.index == pair[1].0.index {
            return mismatch(format!(
                "shard {} twice: {} and {}",
                pair[0].0.index,
                pair[0].1.display(),
                pair[1].1.display()
            ));
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !shards.iter().any(|(s, _)| s.index == *i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return mismatch(format!(
            "shard {} of {count} missing: merge all {count} shards' directories",
            missing.join(", ")
        ));
    }
    Ok(shards.into_iter().map(|(s, _)| s).collect())
}

/// Every tag's histogram of `model`, merged over all shards and intervals.
fn merged_hists(
    runs: &[RunData],
    model: ModelKind,
) -> Result<BTreeMap<String, Histogram<u64>>, MergeError> {
    let mut out: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for r in runs {
        let Some(h) = r.hists.get(&model) else {
            continue;
        };
        for (tag, hist) in &h.by_tag {
            out.entry(tag.clone())
                .or_insert_with(new_hist)
                .add(hist)
                .map_err(|e| MergeError::Io(format!("histogram out of range: {e:?}")))?;
        }
    }
    Ok(out)
}

/// Adds `b` into `a`: numbers summed (arrays element by element), objects key by key, anything
/// else kept from `a`.
fn add_json(a: &mut serde_json::Value, b: &serde_json::Value) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(x) => add_json(x, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.iter().chain(b).all(Value::is_number) => {
            if a.len() < b.len() {
                a.resize(b.len(), Value::from(0u64));
            }
            for (x, y) in a.iter_mut().zip(b) {
                add_json(x, y);
            }
        }
        (a @ Value::Number(_), Value::Number(y)) => {
            let x = a.as_number().expect("a number");
            *a = match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => Value::from(x + y),
                _ => Value::from(x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0)),
            };
        }
        (a @ Value::Null, b) => *a = b.clone(),
        _ => {}
    }
}

/// One model's figures over all shards: counts summed, distributions from the merged
/// histograms, ratios and maxima recomputed.
fn merge_model(parts: &[&ModelSummary], hists: &BTreeMap<String, Histogram<u64>>) -> ModelSummary {
    let mut sum = serde_json::to_value(parts[0]).expect("summaries serialize");
    for p in &parts[1..] {
        add_json(
            &mut sum,
            &serde_json::to_value(p).expect("summaries serialize"),
        );
    }
    let mut m: ModelSummary = serde_json::from_value(sum).expect("a sum of summaries reads back");
    let of = |tag: &str| hists.get(tag).map(Percentiles::of).unwrap_or_default();
    let push = m.fleet().is_some();
    m.latency_us = of("latency");
    m.uncorrected_latency_us = of("uncorrected_latency");
    (m.ack_latency_us, m.ack_uncorrected_latency_us) = if push {
        (of("latency"), of("uncorrected_latency"))
    } else {
        (of("ack_latency"), of("ack_uncorrected_latency"))
    };
    m.time_to_delivery_us = m.ack_latency_us;
    m.connect_us = of("connect");
    m.tls_handshake_us = of("tls_handshake");
    m.schedule_lag_us = of("schedule_lag");
    m.attempts_per_event = Percentiles::of_counts(&m.attempts_histogram);
    let delivered: u64 = parts.iter().map(|p| p.delivered).sum();
    m.bytes_per_event = if delivered > 0 {
        parts
            .iter()
            .map(|p| p.bytes_per_event * p.delivered as f64)
            .sum::<f64>()
            / delivered as f64
    } else {
        0.0
    };
    // Who saturated: the first shard that says so speaks for the run.
    m.saturation = parts
        .iter()
        .map(|p| p.saturation.clone())
        .find(|s| s.generator || s.behind || s.link)
        .unwrap_or_else(|| parts[0].saturation.clone());
    m.saturation.offered_per_s = parts.iter().map(|p| p.saturation.offered_per_s).sum();
    m.saturation.sent_per_s = parts.iter().map(|p| p.saturation.sent_per_s).sum();
    let fleets: Vec<&WsSummary> = parts.iter().filter_map(|p| p.fleet()).collect();
    let delivered_total = m.delivered;
    let peaks: Vec<u64> = parts.iter().map(|p| p.connections.peak).collect();
    let peak_total: u64 = peaks.iter().sum();
    for w in [&mut m.websocket, &mut m.sse, &mut m.longpoll]
        .into_iter()
        .flatten()
    {
        w.backlog_latency_us = of("backlog_latency");
        w.pong_rtt_us = of("pong_rtt");
        w.ramp_s = fleets.iter().map(|f| f.ramp_s).fold(0.0, f64::max);
        w.recovery_s = fleets.iter().map(|f| f.recovery_s).fold(0.0, f64::max);
        // Memory per connection: each shard's weighted by the connections it held.
        let per = |pick: fn(&WsSummary) -> f64| {
            if peak_total == 0 {
                0.0
            } else {
                fleets
                    .iter()
                    .zip(&peaks)
                    .map(|(f, n)| pick(f) * *n as f64)
                    .sum::<f64>()
                    / peak_total as f64
            }
        };
        w.memory_per_connection_bytes.generator = per(|f| f.memory_per_connection_bytes.generator);
        w.memory_per_connection_bytes.target = per(|f| f.memory_per_connection_bytes.target);
        if let Some(p) = &mut w.polling {
            p.polls_per_event = if delivered_total > 0 {
                p.polls as f64 / delivered_total as f64
            } else {
                0.0
            };
            let answers: f64 = fleets
                .iter()
                .filter_map(|f| f.polling.as_ref())
                .zip(parts)
                .filter(|(q, _)| q.events_per_answer > 0.0)
                .map(|(q, part)| part.delivered as f64 / q.events_per_answer)
                .sum();
            p.events_per_answer = if answers > 0.0 {
                delivered_total as f64 / answers
            } else {
                0.0
            };
            p.hold_s = fleets[0].polling.as_ref().map_or(0.0, |q| q.hold_s);
        }
    }
    if let (Some(t), Some(first)) = (&mut m.tls, parts[0].tls.as_ref()) {
        t.resume = first.resume;
    }
    let links: Vec<_> = parts.iter().filter_map(|p| p.network.as_ref()).collect();
    m.network = crate::netem::merged(&links, m.resources.link.map_or(0.0, |l| l.cpu_s));
    m
}

/// Reads a shard's `.hlog` of `model` as intervals keyed by absolute second and tag.
fn shard_intervals(
    dir: &Path,
    model: ModelKind,
) -> Result<Vec<(IntervalKey, f64, Histogram<u64>)>, MergeError> {
    let path = dir.join(format!("{model}.hlog"));
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(Vec::new());
    };
    let bad = |e: String| MergeError::Io(format!("{}: {e}", path.display()));
    let mut base = 0.0;
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(&bytes) {
        match entry.map_err(|e| bad(format!("{e:?}")))? {
            LogEntry::BaseTime(t) => base = t.as_secs_f64(),
            LogEntry::StartTime(t) if base == 0.0 => base = t.as_secs_f64(),
            LogEntry::Interval(i) => {
                let start = base + i.start_timestamp().as_secs_f64();
                let tag = i.tag().map_or("", |t| t.as_str()).to_string();
                let h = decode_hist(i.encoded_histogram()).map_err(bad)?;
                out.push(((start.round() as i64, tag), i.duration().as_secs_f64(), h));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Writes the merged `.hlog` of `model`: the shards' intervals that start in the same second
/// (with `--start-at`, the same interval on every machine) summed per tag.
fn write_hlog(
    runs: &[RunData],
    model: ModelKind,
    out: &Path,
    base_s: f64,
) -> Result<(), MergeError> {
    let mut merged: BTreeMap<IntervalKey, (f64, Histogram<u64>)> = BTreeMap::new();
    for r in runs {
        for (key, len, h) in shard_intervals(&r.dir, model)? {
            let slot = merged.entry(key).or_insert_with(|| (len, new_hist()));
            slot.0 = slot.0.max(len);
            slot.1
                .add(&h)
                .map_err(|e| MergeError::Io(format!("histogram out of range: {e:?}")))?;
        }
    }
    let path = out.join(format!("{model}.hlog"));
    let io = |e: std::io::Error| MergeError::Io(format!("cannot write {}: {e}", path.display()));
    let mut file = std::fs::File::create(&path).map_err(io)?;
    let mut serializer = V2DeflateSerializer::new();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(base_s.max(0.0));
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "pushbench {model} model, merged from {} shards; values in microseconds; tags name the metric",
            runs.len()
        ))
        .with_start_time(base)
        .with_base_time(base)
        .begin_log_with(&mut file, &mut serializer)
        .map_err(io)?;
    for ((start, tag), (len, h)) in &merged {
        // Relative to the log's base time, as the run's own logs write them.
        let at = Duration::from_secs_f64((*start as f64 - base_s).max(0.0));
        let tag = Tag::new(tag);
        log.write_histogram(h, at, Duration::from_secs_f64(*len), tag)
            .map_err(|e| MergeError::Io(format!("cannot write {}: {e:?}", path.display())))?;
    }
    Ok(())
}

/// Sums the shards' time series by model and wall-clock second (each shard's `t_s` counts
/// from its own start), re-based on the earliest shard's start.
fn write_timeseries(runs: &[RunData], out: &Path, base_s: f64) -> Result<(), MergeError> {
    let mut rows: BTreeMap<(ModelKind, i64), TimeseriesRow> = BTreeMap::new();
    for r in runs {
        let start = r.summary.shard.as_ref().map_or(base_s, |s| s.started_s);
        for row in &r.timeseries {
            let t = ((start - base_s) + row.t_s).round() as i64;
            let slot = rows.entry((row.model, t)).or_insert_with(|| TimeseriesRow {
                t_s: t as f64,
                model: row.model,
                ..TimeseriesRow::default()
            });
            slot.offered += row.offered;
            slot.sent += row.sent;
            slot.delivered += row.delivered;
            slot.errors += row.errors;
            slot.retries += row.retries;
            slot.connections += row.connections;
            // Per-interval percentiles cannot be summed: the worst shard's stands for the
            // second (the merged distributions are in the .hlog).
            slot.p50_us = slot.p50_us.max(row.p50_us);
            slot.p99_us = slot.p99_us.max(row.p99_us);
            slot.max_us = slot.max_us.max(row.max_us);
            slot.gen_cpu_pct += row.gen_cpu_pct;
            slot.gen_rss_bytes += row.gen_rss_bytes;
            slot.target_cpu_pct += row.target_cpu_pct;
            slot.target_rss_bytes += row.target_rss_bytes;
            slot.abandoned += row.abandoned;
            slot.failed += row.failed;
            slot.dropped += row.dropped;
        }
    }
    let path = out.join("timeseries.csv");
    let err = |e: String| MergeError::Io(format!("cannot write {}: {e}", path.display()));
    let mut w = csv::Writer::from_path(&path).map_err(|e| err(e.to_string()))?;
    for row in rows.values() {
        w.serialize(row).map_err(|e| err(e.to_string()))?;
    }
    w.flush().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_figures_add_up_field_by_field() {
        let mut a = serde_json::json!({"n": 2, "f": 0.5, "s": "push", "h": [1, 2], "o": {"x": 1}, "z": null});
        let b = serde_json::json!({"n": 3, "f": 0.25, "s": "idle", "h": [1, 0, 4], "o": {"x": 2, "y": 5}, "z": 7});
        add_json(&mut a, &b);
        assert_eq!(
            a,
            serde_json::json!({"n": 5, "f": 0.75, "s": "push", "h": [2, 2, 4], "o": {"x": 3, "y": 5}, "z": 7})
        );
    }
}
