//! The validating walk over a spanned TOML tree. Collects every problem instead of stopping at
//! the first (k6 style); each names its dotted key and line. This file holds the entry,
//! [`parse`] (top-level keys, which tables exist, checks across tables) and the keys the model
//! tables share (`max_wait`, backoff); [`reader`] is the kit every table is read with, and each
//! table has its own file: [`workload`], [`webhook`], [`websocket`], [`thresholds`], the
//! receiver and retry faults in [`faults`], and target urls in [`url`].

use toml_edit::Document;

mod faults;
mod headers;
mod network;
mod reader;
mod thresholds;
mod tls;
mod url;
mod webhook;
mod websocket;
mod workload;

use reader::{Cx, Field, Section};
use thresholds::parse_thresholds;
use webhook::webhook;
use websocket::websocket;
use workload::workload;

use super::{Jitter, Problem, PushProtocol, Scenario, WsMode};
use crate::schedule::Shape;

/// Parses and validates scenario text. `default_name` is used when the file has no `name`;
/// `env` resolves `env:NAME` secrets. Returns every problem found, in file order.
pub fn parse(
    src: &str,
    default_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Scenario, Vec<Problem>> {
    let mut cx = Cx {
        src,
        problems: Vec::new(),
    };
    if src.trim().is_empty() {
        cx.problem(
            None,
            "",
            "the file is empty; a scenario needs at least a [workload] table and a model table such as [webhook]",
        );
        return Err(cx.problems);
    }
    let doc = match Document::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            let line = cx.line_of(e.span());
            let key = e
                .span()
                .and_then(|span| super::syntax::key_at(src, span.start))
                .unwrap_or_default();
            let message = e.message().trim().to_string();
            cx.problem(line, &key, format!("not valid TOML: {message}"));
            return Err(cx.problems);
        }
    };
    let mut root = Section {
        path: String::new(),
        table: doc.as_table(),
        known: Vec::new(),
    };

    let name = match cx.string(&mut root, "name") {
        Some((n, f)) => {
            let ok = !n.is_empty()
                && n.len() <= 100
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                cx.problem(
                    f.line,
                    "name",
                    "use 1-100 characters from A-Z a-z 0-9 . _ - (it names the results directory)",
                );
            }
            n.to_string()
        }
        None => sanitize_name(default_name),
    };
    let seed = cx.integer(&mut root, "seed", 0, i64::MAX).unwrap_or(1) as u64;

    let workload = match cx.table(&mut root, "workload") {
        Some((mut s, _)) => {
            let has_webhook = doc.as_table().get("webhook").is_some();
            let w = workload(&mut cx, &mut s, has_webhook);
            cx.finish(s);
            w
        }
        None => {
            // A [workload] of the wrong type was reported as such already.
            if root.table.get("workload").is_none() {
                cx.problem(
                    None,
                    "workload",
                    "missing [workload] table (events_per_second, duration, ...)",
                );
            }
            None
        }
    };

    let payload_bytes = workload.as_ref().map(|w| w.payload_bytes).unwrap_or(512);
    let webhook = match cx.table(&mut root, "webhook") {
        Some((mut s, _)) => {
            let w = webhook(&mut cx, &mut s, env, payload_bytes);
            cx.finish(s);
            w
        }
        None => None,
    };
    let mut push_fleet =
        |cx: &mut Cx<'_>, protocol: PushProtocol| match cx.table(&mut root, protocol.section()) {
            Some((mut s, _)) => {
                let w = websocket(cx, &mut s, env, protocol);
                cx.finish(s);
                w
            }
            None => None,
        };
    let websocket = push_fleet(&mut cx, PushProtocol::WebSocket);
    let sse = push_fleet(&mut cx, PushProtocol::Sse);
    let longpoll = push_fleet(&mut cx, PushProtocol::LongPoll);
    let closed_loop = workload.as_ref().is_some_and(|w| w.shape == Shape::Max);
    for fleet in [&websocket, &sse, &longpoll].into_iter().flatten() {
        if closed_loop && fleet.mode == WsMode::Push {
            let name = fleet.protocol.section();
            let line = root
                .table
                .get(name)
                .and_then(|t| t.as_table_like())
                .and_then(|t| t.get_key_value("mode"))
                .and_then(|(k, _)| cx.line_of(k.span()));
            cx.problem(
                line,
                &format!("{name}.mode"),
                "shape = \"max\" (closed loop) applies to webhooks and to echo; push needs a rate",
            );
        }
    }
    let mut models = Vec::new();
    if root.table.get("webhook").is_some() {
        models.push("webhook");
    }
    if root.table.get("websocket").is_some() {
        models.push("websocket");
    }
    if root.table.get("sse").is_some() {
        models.push("sse");
    }
    if root.table.get("longpoll").is_some() {
        models.push("longpoll");
    }
    if models.is_empty() {
        cx.problem(
            None,
            "",
            "no model enabled: add a [webhook], [websocket], [sse] or [longpoll] table",
        );
    }

    let network = match cx.table(&mut root, "network") {
        Some((mut s, f)) => {
            let n = network::network(&mut cx, &mut s);
            cx.finish(s);
            // The link stands between the generator and the built-in targets only.
            let external = [
                ("webhook", webhook.as_ref().map(|w| w.target.is_builtin())),
                (
                    "websocket",
                    websocket.as_ref().map(|w| w.target.is_builtin()),
                ),
                ("sse", sse.as_ref().map(|w| w.target.is_builtin())),
                ("longpoll", longpoll.as_ref().map(|w| w.target.is_builtin())),
            ];
            for (name, _) in external.iter().filter(|(_, b)| *b == Some(false)) {
                cx.problem(
                    f.line,
                    "network",
                    format!(
                        "[network] emulates the link to the built-in targets; {name}.url is \
                         an external server (emulate its network with the tools of that network, \
                         or use url = \"builtin\")"
                    ),
                );
            }
            n
        }
        None => None,
    };

    let mut thresholds = Vec::new();
    if let Some((mut s, _)) = cx.table(&mut root, "thresholds") {
        thresholds = parse_thresholds(&mut cx, &mut s, &models);
    }
    cx.finish(root);

    if !cx.problems.is_empty() {
        cx.problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        return Err(cx.problems);
    }
    Ok(Scenario {
        name,
        seed,
        workload: workload.expect("no problems means the workload parsed"),
        webhook,
        websocket,
        sse,
        longpoll,
        network,
        thresholds,
        source: src.to_string(),
    })
}

fn sanitize_name(stem: &str) -> String {
    let s: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    if s.is_empty() {
        "scenario".into()
    } else {
        s
    }
}

/// `max_wait` of `[webhook]` or `[websocket]`: how late a first send may start (default 1 s).
fn max_wait(cx: &mut Cx<'_>, s: &mut Section<'_>, table: &str) -> u64 {
    match cx.duration(s, "max_wait") {
        // A pacer wakes up to tens of microseconds late: below a millisecond, nearly every
        // delivery would be dropped however idle the generator.
        Some((ns, line)) if ns < 1_000_000 => {
            cx.problem(line, &format!("{table}.max_wait"), "must be at least 1ms");
            1_000_000
        }
        Some((ns, _)) => ns,
        None => 1_000_000_000,
    }
}

/// `initial`, `max` and `jitter` of a backoff table (webhook retries, WebSocket reconnects).
fn backoff(cx: &mut Cx<'_>, r: &mut Section<'_>, initial: u64, max: u64) -> (u64, u64, Jitter) {
    let initial_ns = cx.duration(r, "initial").map_or(initial, |d| d.0);
    let max_ns = cx.duration(r, "max").map_or(max, |d| d.0);
    let jitter = cx
        .choice(
            r,
            "jitter",
            &[
                ("full", Jitter::Full),
                ("equal", Jitter::Equal),
                ("none", Jitter::None),
            ],
        )
        .unwrap_or(Jitter::Full);
    if max_ns < initial_ns {
        let line = r
            .table
            .get_key_value("max")
            .and_then(|(k, _)| cx.line_of(k.span()));
        let path = r.child("max");
        cx.problem(line, &path, "must not be shorter than `initial`");
    }
    (initial_ns, max_ns, jitter)
}
