//! `[workload]`: the event stream every model delivers (rate, subscribers, fanout, payload size,
//! duration, warm-up) and its arrival `shape` (constant, poisson, max, ramp, burst, steps).

use super::reader::number_of;
use super::{Cx, Field, Section};
use crate::envelope::{WEBHOOK_MIN_BYTES, WS_EVENT_BYTES};
use crate::scenario::{parse_duration_ns, Workload};
use crate::schedule::{Shape, Step};

pub(super) fn workload(
    cx: &mut Cx<'_>,
    s: &mut Section<'_>,
    has_webhook: bool,
) -> Option<Workload> {
    let before = cx.problems.len();
    let rate = cx.positive_rate(s, "events_per_second");
    let rate_given = s.table.get("events_per_second").is_some();
    let subscribers = cx.integer(s, "subscribers", 1, 10_000_000).unwrap_or(1) as u64;
    let fanout_field = s.table.get_key_value("fanout").map(|(k, _)| k.span());
    let fanout = cx.integer(s, "fanout", 1, 100_000).unwrap_or(1) as u64;
    if fanout > subscribers {
        let line = fanout_field.and_then(|sp| cx.line_of(sp));
        cx.problem(
            line,
            "workload.fanout",
            format!("{fanout} is more than the {subscribers} subscribers"),
        );
    }
    // The smallest body depends on the models: the webhook JSON envelope, or the WebSocket
    // event header.
    let min_payload = if has_webhook {
        WEBHOOK_MIN_BYTES
    } else {
        WS_EVENT_BYTES
    };
    let payload_bytes = match cx.integer(s, "payload_bytes", 0, 16 << 20) {
        Some(v) if (v as usize) < min_payload => {
            let line = s
                .table
                .get_key_value("payload_bytes")
                .and_then(|(k, _)| cx.line_of(k.span()));
            cx.problem(
                line,
                "workload.payload_bytes",
                if min_payload == WEBHOOK_MIN_BYTES {
                    format!("must be at least {WEBHOOK_MIN_BYTES}: the webhook event envelope (id, type, created_at, subscriber) takes that much (got {v})")
                } else {
                    format!("must be at least {min_payload}: the event header (sequence, timestamps, subscriber) takes that much (got {v})")
                },
            );
            min_payload
        }
        Some(v) => v as usize,
        None => 512,
    };
    let duration = cx.duration(s, "duration");
    match duration {
        None if s.table.get("duration").is_none() => cx.problem(
            None,
            "workload.duration",
            "missing; add e.g. duration = \"15s\"",
        ),
        Some((0, line)) => cx.problem(line, "workload.duration", "must be longer than 0s"),
        _ => {}
    }
    let warmup_ns = cx.duration(s, "warmup").map(|(ns, _)| ns).unwrap_or(0);

    let shape = match cx.field(s, "shape") {
        None => {
            if !rate_given {
                cx.problem(
                    None,
                    "workload.events_per_second",
                    "missing; add e.g. events_per_second = 1000",
                );
            }
            rate.map(|r| Shape::Constant { rate_per_sec: r })
        }
        Some(f) => shape(cx, f, rate, rate_given),
    };
    if cx.problems.len() > before {
        return None;
    }
    Some(Workload {
        shape: shape?,
        subscribers,
        fanout,
        payload_bytes,
        duration_ns: duration?.0,
        warmup_ns,
        shard: crate::schedule::Shard::default(),
        start_at_s: None,
    })
}

fn shape(cx: &mut Cx<'_>, f: Field<'_>, rate: Option<f64>, rate_given: bool) -> Option<Shape> {
    const KEY: &str = "workload.shape";
    if let Some(name) = f.item.as_str() {
        let needs_rate = |cx: &mut Cx<'_>| {
            if !rate_given {
                cx.problem(
                    f.line,
                    "workload.events_per_second",
                    format!("shape \"{name}\" needs events_per_second"),
                );
            }
        };
        return match name {
            "constant" => {
                needs_rate(cx);
                rate.map(|r| Shape::Constant { rate_per_sec: r })
            }
            "poisson" => {
                needs_rate(cx);
                rate.map(|r| Shape::Poisson { rate_per_sec: r })
            }
            "max" => {
                if rate_given {
                    cx.problem(f.line, "workload.events_per_second", "shape \"max\" sends as fast as the target answers; remove events_per_second");
                    return None;
                }
                Some(Shape::Max)
            }
            other => {
                cx.problem(f.line, KEY, format!("unknown shape \"{other}\"; expected \"constant\", \"poisson\", \"max\", {{ ramp = [from, to] }}, {{ burst = N, every = \"1s\" }} or {{ steps = [[rate, \"10s\"], ...] }}"));
                None
            }
        };
    }
    let Some(table) = f.item.as_table_like() else {
        cx.type_problem(f, KEY, "a shape name or table");
        return None;
    };
    let mut s = Section {
        path: KEY.into(),
        table,
        known: Vec::new(),
    };
    let result = if table.contains_key("ramp") {
        let ramp = cx.field(&mut s, "ramp")?;
        let pair = ramp
            .item
            .as_array()
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((number_of(a.get(0))?, number_of(a.get(1))?)));
        match pair {
            Some((from, to))
                if from >= 0.0 && to >= 0.0 && from + to > 0.0 && from.max(to) <= 10_000_000.0 =>
            {
                Some(Shape::Ramp {
                    from_per_sec: from,
                    to_per_sec: to,
                })
            }
            _ => {
                cx.problem(
                    ramp.line,
                    "workload.shape.ramp",
                    "expected [from, to]: two rates >= 0 per second, not both 0",
                );
                None
            }
        }
    } else if table.contains_key("burst") {
        let size = cx.integer(&mut s, "burst", 1, 10_000_000);
        let every = cx.duration(&mut s, "every");
        match every {
            None if !table.contains_key("every") => cx.problem(
                f.line,
                "workload.shape.every",
                "a burst needs every = \"1s\" (the period)",
            ),
            Some((0, line)) => cx.problem(line, "workload.shape.every", "must be longer than 0s"),
            _ => {}
        }
        match (size, every) {
            (Some(size), Some((every_ns, _))) if every_ns > 0 => Some(Shape::Burst {
                size: size as u64,
                every_ns,
            }),
            _ => None,
        }
    } else if table.contains_key("steps") {
        let steps_field = cx.field(&mut s, "steps")?;
        steps(cx, steps_field)
    } else {
        cx.problem(f.line, KEY, "expected one of { ramp = [from, to] }, { burst = N, every = \"1s\" }, { steps = [[rate, \"10s\"], ...] }");
        None
    };
    cx.finish(s);
    result
}

fn steps(cx: &mut Cx<'_>, f: Field<'_>) -> Option<Shape> {
    const KEY: &str = "workload.shape.steps";
    let Some(array) = f.item.as_array().filter(|a| !a.is_empty()) else {
        cx.problem(
            f.line,
            KEY,
            "expected a non-empty array of [rate, \"duration\"] pairs",
        );
        return None;
    };
    let mut out = Vec::new();
    for (i, v) in array.iter().enumerate() {
        let line = cx.line_of(v.span()).or(f.line);
        let pair = v.as_array().filter(|a| a.len() == 2);
        let parsed = pair.and_then(|a| Some((number_of(a.get(0))?, a.get(1)?.as_str()?)));
        match parsed {
            Some((rate, dur)) if (0.0..=10_000_000.0).contains(&rate) => {
                match parse_duration_ns(dur) {
                    Ok(duration_ns) => out.push(Step {
                        rate_per_sec: rate,
                        duration_ns,
                    }),
                    Err(msg) => cx.problem(line, KEY, format!("step {}: {msg}", i + 1)),
                }
            }
            _ => cx.problem(
                line,
                KEY,
                format!("step {}: expected [rate >= 0, \"duration\"]", i + 1),
            ),
        }
    }
    if out.iter().all(|s| s.rate_per_sec == 0.0) {
        cx.problem(
            f.line,
            KEY,
            "every step has rate 0, so no event would be sent",
        );
        return None;
    }
    (out.len() == array.len()).then_some(Shape::Steps(out))
}
