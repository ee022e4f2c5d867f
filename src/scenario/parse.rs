//! The validating walk over a spanned TOML tree. Collects every problem instead of stopping at
//! the first (k6 style); each names its dotted key and line.

use std::ops::Range;

use toml_edit::{Document, Item, TableLike, Value};

mod faults;

use super::{
    parse_duration_ns, ConnectionMode, DropFault, Jitter, Problem, ReceiverConfig, ReconnectPolicy,
    RetryPolicy, Scenario, Secret, Threshold, UrlTemplate, WebSocketConfig, WebhookConfig,
    WebhookTarget, Workload, WsMode, WsServerConfig, WsTarget,
};
use crate::schedule::{Shape, Step};
use crate::webhook::payload::MIN_PAYLOAD_BYTES;
use crate::webhook::sign::{SignatureScheme, SigningKey};

/// Collected problems plus the source, to turn byte spans into lines.
struct Cx<'s> {
    src: &'s str,
    problems: Vec<Problem>,
}

/// One value found under a key.
#[derive(Clone, Copy)]
struct Field<'t> {
    item: &'t Item,
    line: Option<usize>,
}

/// A table being read; remembers which keys were asked for so the rest can be reported unknown.
struct Section<'t> {
    path: String,
    table: &'t dyn TableLike,
    known: Vec<&'static str>,
}

impl<'s> Cx<'s> {
    fn line_of(&self, span: Option<Range<usize>>) -> Option<usize> {
        let start = span?.start.min(self.src.len());
        Some(
            self.src.as_bytes()[..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1,
        )
    }

    fn problem(&mut self, line: Option<usize>, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            key: super::syntax::clip(key),
            message: message.into(),
        });
    }

    fn field<'t>(&mut self, section: &mut Section<'t>, key: &'static str) -> Option<Field<'t>> {
        section.known.push(key);
        let (k, item) = section.table.get_key_value(key)?;
        if item.is_none() {
            return None;
        }
        let line = self.line_of(k.span()).or_else(|| self.line_of(item.span()));
        Some(Field { item, line })
    }

    fn finish(&mut self, section: Section<'_>) {
        for (key, _) in section.table.iter() {
            if section.known.contains(&key) {
                continue;
            }
            let line = section
                .table
                .get_key_value(key)
                .and_then(|(k, item)| self.line_of(k.span()).or_else(|| self.line_of(item.span())));
            let full = section.child(key);
            let expected = section.known.join(", ");
            self.problem(
                line,
                &full,
                format!("unknown key; expected one of: {expected}"),
            );
        }
    }

    fn type_problem(&mut self, f: Field<'_>, key: &str, want: &str) {
        let found = describe(f.item);
        self.problem(f.line, key, format!("expected {want}, found {found}"));
    }

    fn string<'t>(
        &mut self,
        s: &mut Section<'t>,
        key: &'static str,
    ) -> Option<(&'t str, Field<'t>)> {
        let f = self.field(s, key)?;
        match f.item.as_str() {
            Some(v) => Some((v, f)),
            None => {
                self.type_problem(f, &s.child(key), "a string");
                None
            }
        }
    }

    fn integer(
        &mut self,
        s: &mut Section<'_>,
        key: &'static str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let f = self.field(s, key)?;
        let path = s.child(key);
        match f.item.as_integer() {
            Some(v) if v < min => {
                self.problem(f.line, &path, format!("must be at least {min} (got {v})"));
                None
            }
            Some(v) if v > max => {
                self.problem(f.line, &path, format!("must be at most {max} (got {v})"));
                None
            }
            Some(v) => Some(v),
            None => {
                self.type_problem(f, &path, "an integer");
                None
            }
        }
    }

    fn number<'t>(&mut self, s: &mut Section<'t>, key: &'static str) -> Option<(f64, Field<'t>)> {
        let f = self.field(s, key)?;
        match number_of(f.item.as_value()) {
            Some(v) if v.is_finite() => Some((v, f)),
            Some(v) => {
                self.problem(
                    f.line,
                    &s.child(key),
                    format!("must be a finite number (got {v})"),
                );
                None
            }
            None => {
                self.type_problem(f, &s.child(key), "a finite number");
                None
            }
        }
    }

    fn positive_rate(&mut self, s: &mut Section<'_>, key: &'static str) -> Option<f64> {
        let path = s.child(key);
        let (v, f) = self.number(s, key)?;
        self.check_rate(v, f.line, &path)
    }

    fn check_rate(&mut self, v: f64, line: Option<usize>, path: &str) -> Option<f64> {
        if v <= 0.0 {
            self.problem(line, path, format!("must be greater than 0 (got {v})"));
            None
        } else if v > 10_000_000.0 {
            self.problem(
                line,
                path,
                format!("must be at most 10000000 per second (got {v})"),
            );
            None
        } else {
            Some(v)
        }
    }

    fn duration(&mut self, s: &mut Section<'_>, key: &'static str) -> Option<(u64, Option<usize>)> {
        let f = self.field(s, key)?;
        let path = s.child(key);
        self.duration_value(f, &path).map(|ns| (ns, f.line))
    }

    fn duration_value(&mut self, f: Field<'_>, path: &str) -> Option<u64> {
        match f.item.as_str() {
            Some(text) => match parse_duration_ns(text) {
                Ok(ns) => Some(ns),
                Err(msg) => {
                    self.problem(f.line, path, msg);
                    None
                }
            },
            None => {
                self.type_problem(f, path, "a duration string like \"30s\" or \"250ms\"");
                None
            }
        }
    }

    fn boolean(&mut self, s: &mut Section<'_>, key: &'static str) -> Option<bool> {
        let f = self.field(s, key)?;
        match f.item.as_bool() {
            Some(v) => Some(v),
            None => {
                self.type_problem(f, &s.child(key), "true or false");
                None
            }
        }
    }

    fn table<'t>(
        &mut self,
        s: &mut Section<'t>,
        key: &'static str,
    ) -> Option<(Section<'t>, Field<'t>)> {
        let f = self.field(s, key)?;
        match f.item.as_table_like() {
            Some(table) => Some((
                Section {
                    path: s.child(key),
                    table,
                    known: Vec::new(),
                },
                f,
            )),
            None => {
                self.type_problem(f, &s.child(key), "a table");
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        s: &mut Section<'_>,
        key: &'static str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let path = s.child(key);
        let (text, f) = self.string(s, key)?;
        match options.iter().find(|(name, _)| *name == text) {
            Some((_, v)) => Some(*v),
            None => {
                let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                self.problem(
                    f.line,
                    &path,
                    format!(
                        "unknown value \"{text}\"; expected one of {}",
                        names.join(", ")
                    ),
                );
                None
            }
        }
    }
}

impl Section<'_> {
    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

fn number_of(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Integer(i) => Some(*i.value() as f64),
        Value::Float(f) => Some(*f.value()),
        _ => None,
    }
}

fn describe(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) | Item::Value(Value::InlineTable(_)) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(Value::String(_)) => "a string",
        Item::Value(Value::Integer(_)) => "an integer",
        Item::Value(Value::Float(_)) => "a float",
        Item::Value(Value::Boolean(_)) => "a boolean",
        Item::Value(Value::Datetime(_)) => "a date-time",
        Item::Value(Value::Array(_)) => "an array",
    }
}

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
    let websocket = match cx.table(&mut root, "websocket") {
        Some((mut s, _)) => {
            let w = websocket(&mut cx, &mut s);
            cx.finish(s);
            w
        }
        None => None,
    };
    let closed_loop = workload.as_ref().is_some_and(|w| w.shape == Shape::Max);
    if websocket
        .as_ref()
        .is_some_and(|w| closed_loop && w.mode == WsMode::Push)
    {
        let line = root
            .table
            .get("websocket")
            .and_then(|t| t.as_table_like())
            .and_then(|t| t.get_key_value("mode"))
            .and_then(|(k, _)| cx.line_of(k.span()));
        cx.problem(
            line,
            "websocket.mode",
            "shape = \"max\" (closed loop) applies to webhooks and to echo; push needs a rate",
        );
    }
    let mut models = Vec::new();
    if root.table.get("webhook").is_some() {
        models.push("webhook");
    }
    if root.table.get("websocket").is_some() {
        models.push("websocket");
    }
    if models.is_empty() {
        cx.problem(
            None,
            "",
            "no model enabled: add a [webhook] and/or a [websocket] table",
        );
    }

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
        thresholds,
        source: src.to_string(),
    })
}

fn websocket(cx: &mut Cx<'_>, s: &mut Section<'_>) -> Option<WebSocketConfig> {
    let before = cx.problems.len();
    let (external, is_builtin) = target_url(cx, s, "ws");
    let mode = cx
        .choice(
            s,
            "mode",
            &[
                ("push", WsMode::Push),
                ("echo", WsMode::Echo),
                ("idle", WsMode::Idle),
            ],
        )
        .unwrap_or(WsMode::Push);
    let connect_rate = cx.positive_rate(s, "connect_rate").unwrap_or(5000.0);
    let ping_interval_ns = match cx.duration(s, "ping_interval") {
        Some((ns, line)) if ns < 10_000_000 => {
            cx.problem(line, "websocket.ping_interval", "must be at least 10ms");
            ns
        }
        Some((ns, _)) => ns,
        None => 15_000_000_000,
    };
    let reconnect = match cx.table(s, "reconnect") {
        Some((mut r, _)) => {
            let (initial_ns, max_ns, jitter) = backoff(cx, &mut r, 100_000_000, 10_000_000_000);
            cx.finish(r);
            ReconnectPolicy {
                initial_ns,
                max_ns,
                jitter,
            }
        }
        None => ReconnectPolicy {
            initial_ns: 100_000_000,
            max_ns: 10_000_000_000,
            jitter: Jitter::Full,
        },
    };
    let subscribe = cx.string(s, "subscribe").map(|(t, _)| t.to_string());
    let drain_ns = cx
        .duration(s, "drain")
        .map(|d| d.0)
        .unwrap_or(2_000_000_000);
    let max_wait_ns = max_wait(cx, s, "websocket");
    let connections_per_worker = cx
        .integer(s, "connections_per_worker", 1, 1_000_000)
        .map(|v| v as usize);
    let mut pointer = |cx: &mut Cx<'_>, key: &'static str| {
        let (text, f) = cx.string(s, key)?;
        let path = format!("websocket.{key}");
        if is_builtin {
            cx.problem(f.line, &path, "only for external servers (the built-in server's events carry their own time and sequence)");
        } else if mode != WsMode::Push {
            cx.problem(f.line, &path, "only applies to mode = \"push\"");
        } else if !text.is_empty() && !text.starts_with('/') {
            cx.problem(
                f.line,
                &path,
                format!(
                    "\"{text}\" is not a JSON pointer; write e.g. \"/{text}\" or \"/data/{text}\""
                ),
            );
        }
        Some(text.to_string())
    };
    let timestamp_field = pointer(cx, "timestamp_field");
    let sequence_field = pointer(cx, "sequence_field");
    let server = match cx.table(s, "server") {
        Some((mut sv, f)) => {
            if !is_builtin {
                cx.problem(
                    f.line,
                    "websocket.server",
                    "only applies when url = \"builtin\"",
                );
            }
            let processes = cx.integer(&mut sv, "processes", 1, 256).map(|v| v as usize);
            let mut drop = None;
            if let Some((mut d, f)) = cx.table(&mut sv, "drop") {
                let at = cx.duration(&mut d, "at");
                let fraction = cx.number(&mut d, "fraction").map(|(v, f)| (v, f.line));
                let code = match cx.field(&mut d, "code") {
                    None => Some(1001),
                    Some(c) => match (c.item.as_integer(), c.item.as_str()) {
                        (Some(v), _) if (1000..=4999).contains(&v) => Some(v as u16),
                        (_, Some("abrupt")) => Some(0),
                        _ => {
                            cx.problem(c.line, "websocket.server.drop.code", "a close code 1000-4999, or \"abrupt\" to reset without a close frame");
                            None
                        }
                    },
                };
                let per_mille = match fraction {
                    None => Some(1000),
                    Some((v, _)) if (0.0..=1.0).contains(&v) => Some((v * 1000.0).round() as u32),
                    Some((v, line)) => {
                        cx.problem(
                            line,
                            "websocket.server.drop.fraction",
                            format!("must be between 0 and 1 (got {v})"),
                        );
                        None
                    }
                };
                match (at, per_mille, code) {
                    (Some((at_ns, _)), Some(per_mille), Some(code)) => {
                        drop = Some(DropFault {
                            at_ns,
                            per_mille,
                            code,
                        })
                    }
                    (None, _, _) => cx.problem(
                        f.line,
                        "websocket.server.drop.at",
                        "missing; when to drop, e.g. at = \"3s\"",
                    ),
                    _ => {}
                }
                cx.finish(d);
            }
            let stall = faults::window(cx, &mut sv, "stall");
            cx.finish(sv);
            WsServerConfig {
                processes,
                drop,
                stall,
            }
        }
        None => WsServerConfig::default(),
    };
    if cx.problems.len() > before {
        return None;
    }
    Some(WebSocketConfig {
        target: match external {
            Some(u) => WsTarget::External(u),
            None => WsTarget::Builtin(server),
        },
        mode,
        connect_rate,
        ping_interval_ns,
        reconnect,
        subscribe,
        drain_ns,
        max_wait_ns,
        connections_per_worker,
        timestamp_field,
        sequence_field,
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

fn workload(cx: &mut Cx<'_>, s: &mut Section<'_>, has_webhook: bool) -> Option<Workload> {
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
        MIN_PAYLOAD_BYTES
    } else {
        crate::websocket::proto::EVENT_HEADER
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
                if min_payload == MIN_PAYLOAD_BYTES {
                    format!("must be at least {MIN_PAYLOAD_BYTES}: the webhook event envelope (id, type, created_at, subscriber) takes that much (got {v})")
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

fn webhook(
    cx: &mut Cx<'_>,
    s: &mut Section<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    payload_bytes: usize,
) -> Option<WebhookConfig> {
    let before = cx.problems.len();
    let (external, is_builtin) = target_url(cx, s, "http");
    let connection = cx
        .choice(
            s,
            "connection",
            &[
                ("keepalive", ConnectionMode::KeepAlive),
                ("fresh", ConnectionMode::Fresh),
            ],
        )
        .unwrap_or(ConnectionMode::KeepAlive);
    let pool = cx.integer(s, "pool", 1, 10_000).unwrap_or(64) as usize;
    let signature = cx
        .choice(
            s,
            "signature",
            &[
                ("standard", SignatureScheme::Standard),
                ("github", SignatureScheme::Github),
                ("stripe", SignatureScheme::Stripe),
                ("none", SignatureScheme::None),
            ],
        )
        .unwrap_or(SignatureScheme::Standard);

    let mut secret = None;
    if let Some((text, f)) = cx.string(s, "secret") {
        let value = match text.strip_prefix("env:") {
            Some(var) => match env(var) {
                Some(v) if !v.is_empty() => Some(v),
                _ => {
                    cx.problem(
                        f.line,
                        "webhook.secret",
                        format!("environment variable `{var}` is not set (or is empty)"),
                    );
                    None
                }
            },
            None => Some(text.to_string()),
        };
        if let Some(v) = value {
            // Say what is wrong with the secret without ever printing it.
            if let Err(msg) = SigningKey::new(signature, &v) {
                cx.problem(f.line, "webhook.secret", msg);
            }
            secret = Some(Secret(v));
        }
    } else if !is_builtin && signature != SignatureScheme::None {
        cx.problem(None, "webhook.secret", "required when url is not \"builtin\" and signature is not \"none\"; use secret = \"env:NAME\"");
    }

    let timeout_ns = match cx.duration(s, "timeout") {
        Some((0, line)) => {
            cx.problem(line, "webhook.timeout", "must be longer than 0s");
            0
        }
        Some((ns, _)) => ns,
        None => 10_000_000_000,
    };
    let retry = match cx.table(s, "retry") {
        Some((mut r, _)) => {
            let policy = faults::retry(cx, &mut r);
            cx.finish(r);
            policy
        }
        None => RetryPolicy::default(),
    };
    let drain_ns = cx
        .duration(s, "drain")
        .map(|(ns, _)| ns)
        .unwrap_or(10_000_000_000);
    let workers = cx.integer(s, "workers", 1, 256).map(|w| w as usize);
    let max_backlog = cx
        .integer(s, "max_backlog", 1, 100_000_000)
        .unwrap_or(1_000_000) as usize;
    let max_wait_ns = max_wait(cx, s, "webhook");

    let receiver = match cx.table(s, "receiver") {
        Some((mut r, f)) => {
            if !is_builtin {
                cx.problem(
                    f.line,
                    "webhook.receiver",
                    "only applies when url = \"builtin\"",
                );
            }
            let cfg = faults::receiver(cx, &mut r, payload_bytes);
            cx.finish(r);
            cfg
        }
        None => ReceiverConfig::default(),
    };

    if cx.problems.len() > before {
        return None;
    }
    let target = match external {
        Some(u) => WebhookTarget::External(u),
        None => WebhookTarget::Builtin(receiver),
    };
    Some(WebhookConfig {
        target,
        connection,
        pool,
        signature,
        secret,
        timeout_ns,
        retry,
        drain_ns,
        workers,
        max_backlog,
        max_wait_ns,
    })
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

fn parse_thresholds(cx: &mut Cx<'_>, s: &mut Section<'_>, models: &[&str]) -> Vec<Threshold> {
    let mut out = Vec::new();
    let keys: Vec<String> = s.table.iter().map(|(k, _)| k.to_string()).collect();
    for key in keys {
        let (k, item) = s.table.get_key_value(&key).expect("key from iter");
        let line = cx.line_of(k.span()).or_else(|| cx.line_of(item.span()));
        let path = format!("thresholds.\"{key}\"");
        match key.split_once('.') {
            Some((model, metric)) if models.contains(&model) => {
                if !crate::record::results::is_numeric_metric(metric) {
                    cx.problem(
                        line,
                        &path,
                        format!("`{metric}` is not a numeric field of a model's summary (e.g. latency_us.p99, failed, achieved_rate)"),
                    );
                }
            }
            Some((model @ ("webhook" | "websocket"), _)) => cx.problem(
                line,
                &path,
                format!("the {model} model is not enabled in this scenario"),
            ),
            _ => cx.problem(
                line,
                &path,
                "a threshold key is model.metric, e.g. \"webhook.latency_us.p99\"",
            ),
        }
        match item.as_str() {
            Some(cond) if parse_condition(cond).is_some() => out.push(Threshold {
                metric: key.clone(),
                condition: cond.to_string(),
                line: line.unwrap_or(0),
            }),
            Some(cond) => cx.problem(
                line,
                &path,
                format!("cannot read condition \"{cond}\"; write e.g. \"< 50000\" or \"== 0\""),
            ),
            None => cx.problem(
                line,
                &path,
                format!(
                    "expected a condition string like \"< 50000\", found {}",
                    describe(item)
                ),
            ),
        }
    }
    out
}

/// Splits `"< 50000"` into an operator and a number.
pub fn parse_condition(text: &str) -> Option<(&str, f64)> {
    let text = text.trim();
    let op_len = ["<=", ">=", "==", "!=", "<", ">"]
        .iter()
        .find(|op| text.starts_with(**op))?
        .len();
    let value: f64 = text[op_len..].trim().parse().ok()?;
    value.is_finite().then(|| (&text[..op_len], value))
}

/// The section's `url`: `"builtin"` (the default) or an external URL of `scheme`.
fn target_url(cx: &mut Cx<'_>, s: &mut Section<'_>, scheme: &str) -> (Option<UrlTemplate>, bool) {
    let path = s.child("url");
    match cx.string(s, "url") {
        None => (None, true),
        Some(("builtin", _)) => (None, true),
        Some((text, f)) => match parse_url_with(text, scheme) {
            Ok(u) => (Some(u), false),
            Err(msg) => {
                cx.problem(f.line, &path, msg);
                (None, false)
            }
        },
    }
}

fn parse_url_with(text: &str, scheme: &str) -> Result<UrlTemplate, String> {
    let secure = if scheme == "http" { "https" } else { "wss" };
    let Some(rest) = text.strip_prefix(&format!("{scheme}://")) else {
        if text.starts_with(&format!("{secure}://")) {
            return Err(format!("{secure} is not supported yet; point at a plain {scheme}:// endpoint (or a local TLS-terminating proxy)"));
        }
        if text.contains("://") {
            return Err(format!(
                "unsupported scheme in \"{text}\"; these urls start with {scheme}://"
            ));
        }
        return Err(format!(
            "\"{text}\" has no scheme; write \"{scheme}://{text}\" or \"builtin\""
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let end = v6
            .find(']')
            .ok_or_else(|| format!("unclosed [ in \"{text}\""))?;
        let port = v6[end + 1..].strip_prefix(':').unwrap_or("80");
        (&v6[..end], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, "80"),
        }
    };
    if host.is_empty() {
        return Err(format!("\"{text}\" has no host"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("bad port \"{port}\" in \"{text}\""))?;
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the path of \"{text}\" contains spaces or control characters"
        ));
    }
    let (path_prefix, path_suffix) = match path.split_once("{subscriber}") {
        Some((a, b)) => {
            if b.contains("{subscriber}") {
                return Err("{subscriber} may appear only once".into());
            }
            (a.to_string(), Some(b.to_string()))
        }
        None => (path.to_string(), None),
    };
    Ok(UrlTemplate {
        raw: text.to_string(),
        host: host.to_string(),
        port,
        path_prefix,
        path_suffix,
    })
}
