//! The fault and retry tables: `[webhook.receiver]` (delay, failures, stall, outages, throttling,
//! gone endpoints), `[webhook] retry` (exponential backoff or a fixed schedule, time scale) and
//! the `{ at, for }` windows the WebSocket server's faults share.

use toml_edit::{Item, TableLike, Value};

use super::{Cx, Field, Section};
use crate::scenario::{
    parse_duration_ns, Jitter, Outage, OutageMode, ReceiverConfig, RetryPolicy, Stall, Throttle,
};

/// Longest retry schedule accepted (entries, the first send included).
const MAX_SCHEDULE: usize = 100;

pub(super) fn retry(cx: &mut Cx<'_>, r: &mut Section<'_>) -> RetryPolicy {
    let time_scale = match cx.number(r, "time_scale") {
        Some((v, _)) if v > 0.0 && v <= 1000.0 => v,
        Some((v, f)) => {
            let path = r.child("time_scale");
            cx.problem(
                f.line,
                &path,
                format!("must be greater than 0 and at most 1000 (got {v}); 0.001 turns hours into seconds"),
            );
            1.0
        }
        None => 1.0,
    };
    let Some(f) = cx.field(r, "schedule") else {
        let attempts = cx.integer(r, "attempts", 1, 100).unwrap_or(5) as u32;
        let (initial_ns, max_ns, jitter) = super::backoff(cx, r, 200_000_000, 30_000_000_000);
        return RetryPolicy {
            attempts,
            initial_ns,
            max_ns,
            jitter,
            schedule_ns: Vec::new(),
            time_scale,
        };
    };
    let waits = schedule(cx, f, &r.child("schedule"));
    // The schedule names every attempt; exponential settings would contradict it.
    for key in ["attempts", "initial"] {
        if let Some(other) = cx.field(r, key) {
            let path = r.child(key);
            cx.problem(
                other.line,
                &path,
                "not with `schedule`, which lists every attempt; remove one of them",
            );
        }
    }
    // No cap and no jitter unless asked for: a schedule is meant as written.
    let max_ns = cx.duration(r, "max").map_or(u64::MAX, |d| d.0);
    let jitter = jitter(cx, r).unwrap_or(Jitter::None);
    let waits = waits.unwrap_or_default();
    RetryPolicy {
        attempts: waits.len() as u32 + 1,
        initial_ns: waits.first().copied().unwrap_or(0),
        max_ns,
        jitter,
        schedule_ns: waits,
        time_scale,
    }
}

/// `["0s", "5s", "5m", ...]`: the first send, then the wait before each retry. Returns the waits.
fn schedule(cx: &mut Cx<'_>, f: Field<'_>, path: &str) -> Option<Vec<u64>> {
    let Some(array) = f.item.as_array().filter(|a| !a.is_empty()) else {
        cx.problem(
            f.line,
            path,
            "expected a non-empty array of durations, e.g. [\"0s\", \"5s\", \"5m\", \"30m\", \"2h\"]",
        );
        return None;
    };
    if array.len() > MAX_SCHEDULE {
        cx.problem(
            f.line,
            path,
            format!("at most {MAX_SCHEDULE} entries (got {})", array.len()),
        );
        return None;
    }
    let mut out = Vec::with_capacity(array.len());
    let mut ok = true;
    for (i, v) in array.iter().enumerate() {
        let line = cx.line_of(v.span()).or(f.line);
        match v.as_str().map(parse_duration_ns) {
            Some(Ok(ns)) => out.push(ns),
            Some(Err(msg)) => {
                cx.problem(line, path, format!("entry {}: {msg}", i + 1));
                ok = false;
            }
            None => {
                cx.problem(
                    line,
                    path,
                    format!("entry {}: expected a duration string like \"5m\"", i + 1),
                );
                ok = false;
            }
        }
    }
    if ok && out[0] != 0 {
        cx.problem(
            f.line,
            path,
            "the first entry is the original send, which goes at its intended time: start with \"0s\" (as in [\"0s\", \"5s\", \"5m\"])",
        );
        ok = false;
    }
    ok.then(|| out.split_off(1))
}

fn jitter(cx: &mut Cx<'_>, r: &mut Section<'_>) -> Option<Jitter> {
    cx.choice(
        r,
        "jitter",
        &[
            ("full", Jitter::Full),
            ("equal", Jitter::Equal),
            ("none", Jitter::None),
        ],
    )
}

/// A duration that goes into a `Retry-After` header, which carries whole seconds.
fn whole_seconds(cx: &mut Cx<'_>, s: &mut Section<'_>, key: &'static str) -> Option<u32> {
    let (ns, line) = cx.duration(s, key)?;
    if ns % 1_000_000_000 != 0 || ns / 1_000_000_000 > u64::from(u32::MAX) {
        let path = s.child(key);
        cx.problem(
            line,
            &path,
            "Retry-After carries whole seconds; write e.g. \"1s\" (time_scale on the retry policy shortens it)",
        );
        return None;
    }
    Some((ns / 1_000_000_000) as u32)
}

/// `{ at = "2s", for = "1s" }` under `key`; reports a missing half.
pub(super) fn window(cx: &mut Cx<'_>, s: &mut Section<'_>, key: &'static str) -> Option<Stall> {
    let (mut w, f) = cx.table(s, key)?;
    let stall = window_in(cx, &mut w, f.line);
    cx.finish(w);
    stall
}

fn window_in(cx: &mut Cx<'_>, w: &mut Section<'_>, line: Option<usize>) -> Option<Stall> {
    let at = cx.duration(w, "at");
    let len = cx.duration(w, "for");
    match (at, len) {
        (Some((at_ns, _)), Some((for_ns, _))) => Some(Stall { at_ns, for_ns }),
        _ => {
            if !w.table.contains_key("at") || !w.table.contains_key("for") {
                let path = w.path.clone();
                cx.problem(line, &path, "needs both at = \"2s\" and for = \"1s\"");
            }
            None
        }
    }
}

pub(super) fn receiver(
    cx: &mut Cx<'_>,
    r: &mut Section<'_>,
    payload_bytes: usize,
) -> ReceiverConfig {
    let mut cfg = ReceiverConfig::default();
    if let Some((ns, _)) = cx.duration(r, "delay") {
        cfg.delay_ns = ns;
    }
    if let Some(v) = fraction(cx, r, "fail_rate") {
        cfg.fail_rate = v;
    }
    cfg.stall = window(cx, r, "stall");
    if let Some(f) = cx.field(r, "outage") {
        cfg.outages = outages(cx, f, &r.child("outage"));
    }
    if let Some((mut t, f)) = cx.table(r, "throttle") {
        let rate = fraction(cx, &mut t, "rate");
        if rate.is_none() && !t.table.contains_key("rate") {
            let path = t.child("rate");
            cx.problem(
                f.line,
                &path,
                "missing; the fraction answered 429, e.g. rate = 0.1",
            );
        }
        let retry_after_s = whole_seconds(cx, &mut t, "retry_after");
        let given = t.table.contains_key("retry_after");
        if let (Some(rate), Some(retry_after_s)) = (rate, retry_after_s.or((!given).then_some(1))) {
            cfg.throttle = Some(Throttle {
                rate,
                retry_after_s,
            });
        }
        cx.finish(t);
    }
    if let Some((mut g, f)) = cx.table(r, "gone") {
        match fraction(cx, &mut g, "subscribers") {
            Some(v) => cfg.gone_fraction = v,
            None if !g.table.contains_key("subscribers") => {
                let path = g.child("subscribers");
                cx.problem(
                    f.line,
                    &path,
                    "missing; the fraction of endpoints that answer 410, e.g. subscribers = 0.01",
                );
            }
            None => {}
        }
        cx.finish(g);
    }
    if let Some(v) = cx.integer(r, "max_body_bytes", 1, 1 << 30) {
        cfg.max_body_bytes = v as usize;
        if (v as usize) < payload_bytes {
            cx.problem(None, "webhook.receiver.max_body_bytes", format!("{v} is smaller than workload.payload_bytes ({payload_bytes}); every delivery would get 413"));
        }
    }
    if let Some(v) = cx.boolean(r, "verify") {
        cfg.verify = v;
    }
    cfg
}

/// A number in 0..=1.
fn fraction(cx: &mut Cx<'_>, s: &mut Section<'_>, key: &'static str) -> Option<f64> {
    let (v, f) = cx.number(s, key)?;
    if (0.0..=1.0).contains(&v) {
        Some(v)
    } else {
        let path = s.child(key);
        cx.problem(f.line, &path, format!("must be between 0 and 1 (got {v})"));
        None
    }
}

/// `outage = { at, for, mode }` or a list of them.
fn outages(cx: &mut Cx<'_>, f: Field<'_>, path: &str) -> Vec<Outage> {
    let mut tables: Vec<(&dyn TableLike, Option<usize>)> = Vec::new();
    match f.item {
        Item::Value(Value::Array(a)) => {
            for v in a.iter() {
                let line = cx.line_of(v.span()).or(f.line);
                match v.as_inline_table() {
                    Some(t) => tables.push((t, line)),
                    None => cx.problem(
                        line,
                        path,
                        "expected a list of { at = \"2s\", for = \"1s\", mode = \"503\" } tables",
                    ),
                }
            }
        }
        Item::ArrayOfTables(a) => {
            for t in a.iter() {
                tables.push((t, cx.line_of(t.span()).or(f.line)));
            }
        }
        item => match item.as_table_like() {
            Some(t) => tables.push((t, f.line)),
            None => cx.type_problem(f, path, "a table { at, for, mode } or a list of them"),
        },
    }
    let mut out = Vec::new();
    for (table, line) in tables {
        let mut s = Section {
            path: path.to_string(),
            table,
            known: Vec::new(),
        };
        let window = window_in(cx, &mut s, line);
        let mode = cx.choice(&mut s, "mode", &[("503", false), ("drop", true)]);
        let retry_after_s = whole_seconds(cx, &mut s, "retry_after");
        if mode == Some(true) && s.table.contains_key("retry_after") {
            let path = s.child("retry_after");
            cx.problem(
                line,
                &path,
                "only with mode = \"503\": a dropped connection carries no headers",
            );
        }
        let mode = match mode {
            Some(true) => OutageMode::Drop,
            _ => OutageMode::Unavailable { retry_after_s },
        };
        cx.finish(s);
        if let Some(w) = window {
            out.push(Outage {
                at_ns: w.at_ns,
                for_ns: w.for_ns,
                mode,
            });
        }
    }
    out
}
