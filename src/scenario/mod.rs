//! Scenario files: TOML in, a validated [`Scenario`] out.
//!
//! Parsing is two-phase, as in ripgrep: [`parse`] walks the spanned TOML tree, collects *every*
//! problem (unknown keys, wrong types, bad durations, rates <= 0, missing secrets...) each with the
//! key and line, and only when there are none builds a `Scenario` in which invalid combinations
//! cannot be represented. The rest of the harness never sees raw TOML.

mod duration;
mod network;
mod parse;
mod signature;
mod syntax;

pub use crate::url_template::UrlTemplate;
use std::fmt;
use std::path::Path;

// Defined beside the `Condition` it holds, so `thresholds` never imports `scenario` back.
pub use crate::thresholds::Threshold;
pub use duration::parse_duration_ns;
pub use network::NetworkConfig;
pub use parse::parse;
pub use signature::SignatureScheme;

use crate::schedule::{Schedule, Shape};

/// The default scenario, compiled in so `pushbench run` works with no files at all.
pub const DEFAULT_SCENARIO: &str = include_str!("../../scenarios/quick.toml");

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Names the results directory; `[A-Za-z0-9._-]` only.
    pub name: String,
    /// Seed for random shapes and injected faults.
    pub seed: u64,
    /// The event stream every model delivers.
    pub workload: Workload,
    /// Present when the webhook model runs.
    pub webhook: Option<WebhookConfig>,
    /// Present when the WebSocket model runs.
    pub websocket: Option<WebSocketConfig>,
    /// Present when the server-sent events model runs (`[sse]`: the push fleet over HTTP).
    pub sse: Option<WebSocketConfig>,
    /// `[longpoll]`, when present.
    pub longpoll: Option<WebSocketConfig>,
    /// `[network]`: the emulated link between the generator and the built-in targets.
    pub network: Option<NetworkConfig>,
    /// Thresholds, conditions parsed, in file order.
    pub thresholds: Vec<Threshold>,
    /// The TOML text it was parsed from; see [`Scenario::redacted_source`].
    pub source: String,
}

/// The open-loop event stream.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Arrival pattern.
    pub shape: Shape,
    /// Number of subscribers (webhook endpoints / WebSocket connections).
    pub subscribers: u64,
    /// Subscribers each event goes to.
    pub fanout: u64,
    /// Size of each event body.
    pub payload_bytes: usize,
    /// Measured part of the run.
    pub duration_ns: u64,
    /// Unmeasured lead-in before `duration`.
    pub warmup_ns: u64,
    /// The part of the run this process runs (`run --shard I/N`; the whole run by default).
    pub shard: crate::schedule::Shard,
    /// When every shard starts, unix seconds (`run --start-at`): the run waits for it.
    pub start_at_s: Option<f64>,
}

impl Workload {
    /// Deliveries the schedule puts in the measured part (after the warm-up), of this shard.
    pub fn measured_deliveries(&self, seed: u64) -> u64 {
        if self.shard.is_whole() {
            return crate::schedule::Arrivals::new(
                &self.shape,
                self.warmup_ns + self.duration_ns,
                seed,
            )
            .filter(|&t| t >= self.warmup_ns)
            .count() as u64
                * self.fanout;
        }
        self.schedule(seed)
            .deliveries(0, 1)
            .filter(|d| d.intended_ns >= self.warmup_ns)
            .count() as u64
    }

    /// Subscribers (connections) this shard holds.
    pub fn shard_subscribers(&self) -> u64 {
        self.shard.subscribers_of(self.subscribers)
    }

    /// The full delivery schedule (warm-up plus measured part).
    pub fn schedule(&self, seed: u64) -> Schedule {
        Schedule {
            shape: self.shape.clone(),
            total_ns: self.warmup_ns + self.duration_ns,
            seed,
            fanout: self.fanout,
            subscribers: self.subscribers,
            shard: self.shard,
        }
    }
}

/// How the provider talks to the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionMode {
    /// A pool of persistent HTTP/1.1 connections.
    KeepAlive,
    /// A new TCP connection for every delivery attempt, as many providers do.
    Fresh,
}

/// Randomisation of retry delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Jitter {
    /// Uniform in [0, backoff] (AWS "full jitter").
    Full,
    /// backoff/2 + uniform in [0, backoff/2].
    Equal,
    /// Exactly the backoff.
    None,
}

/// Retry policy for failed deliveries (connection errors, timeouts, 408, 429 and 5xx).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = never retry).
    pub attempts: u32,
    /// Backoff before the first retry.
    pub initial_ns: u64,
    /// Cap on any single wait (backoff, schedule entry or `Retry-After`), before `time_scale`.
    pub max_ns: u64,
    /// Randomisation.
    pub jitter: Jitter,
    /// A fixed schedule: the wait before retry n is `schedule_ns[n]` (the last entry repeats
    /// if `attempts` asks for more). Empty: exponential backoff from `initial_ns`.
    pub schedule_ns: Vec<u64>,
    /// Multiplies every wait (and `Retry-After`), so a day of retries fits in a test.
    pub time_scale: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_ns: 200_000_000,
            max_ns: 30_000_000_000,
            jitter: Jitter::Full,
            schedule_ns: Vec::new(),
            time_scale: 1.0,
        }
    }
}

/// A secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Behaviour of the built-in receiver, set from the scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    /// Processing delay added to every answer.
    pub delay_ns: u64,
    /// Fraction of requests answered 503 (0..1).
    pub fail_rate: f64,
    /// Hold every answer during `[at, at + for)` after the first request, once.
    pub stall: Option<Stall>,
    /// Windows in which the receiver is down (503, or connections dropped unanswered).
    pub outages: Vec<Outage>,
    /// Answer a fraction of requests 429 with `Retry-After`.
    pub throttle: Option<Throttle>,
    /// Fraction of endpoints (subscribers) that always answer 410 Gone (0..1).
    pub gone_fraction: f64,
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    /// Check signatures (off only for raw-speed benchmarks).
    pub verify: bool,
}

/// A one-off window in which the receiver answers nothing until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// Start, measured from the receiver's first request.
    pub at_ns: u64,
    /// Length.
    pub for_ns: u64,
}

/// How the receiver behaves during an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutageMode {
    /// Answer 503 Service Unavailable (with `Retry-After` when set).
    Unavailable {
        /// Whole seconds for the `Retry-After` header; `None` sends none.
        retry_after_s: Option<u32>,
    },
    /// Close the connection without answering.
    Drop,
}

/// A window in which the receiver is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// Start, measured from the receiver's first request.
    pub at_ns: u64,
    /// Length.
    pub for_ns: u64,
    /// 503 or dropped connections.
    pub mode: OutageMode,
}

impl Outage {
    /// Whether `since_first_ns` (time since the first request) falls inside the window.
    pub fn covers(&self, since_first_ns: u64) -> bool {
        since_first_ns >= self.at_ns && since_first_ns - self.at_ns < self.for_ns
    }
}

/// Rate limiting: a fraction of requests answered 429 Too Many Requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throttle {
    /// Fraction of requests throttled (0..1).
    pub rate: f64,
    /// Whole seconds sent in `Retry-After`.
    pub retry_after_s: u32,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            delay_ns: 0,
            fail_rate: 0.0,
            stall: None,
            outages: Vec::new(),
            throttle: None,
            gone_fraction: 0.0,
            max_body_bytes: 1 << 20,
            verify: true,
        }
    }
}

/// Whether endpoint `subscriber` is one of the `fraction` that answer 410: spread evenly, so
/// subscribers `0..n` hold `floor(n * fraction)` of them and a test can name them.
pub fn endpoint_gone(subscriber: u64, fraction: f64) -> bool {
    fraction > 0.0
        && ((subscriber + 1) as f64 * fraction).floor() > (subscriber as f64 * fraction).floor()
}

/// Where webhook deliveries go.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookTarget {
    /// The harness starts its own receiver as a child process.
    Builtin(ReceiverConfig),
    /// Someone else's receiver.
    External(UrlTemplate),
}

impl WebhookTarget {
    /// The harness starts this target itself.
    pub fn is_builtin(&self) -> bool {
        matches!(self, Self::Builtin(_))
    }
}

/// TLS of a model's connections: `tls = { ca_file, verify, server_name, resume }` with an
/// `https://` url, or `tls = true` (or the table) with `url = "builtin"`, which then serves TLS
/// with a certificate made for the run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsSettings {
    /// PEM certificates to trust beside the platform's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Check the server's certificate (false: test targets only).
    pub verify: bool,
    /// The name the certificate must be valid for, when not the url's host.
    pub server_name: Option<String>,
    /// Resume sessions on new connections (false: a full handshake every time).
    pub resume: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            ca_file: None,
            verify: true,
            server_name: None,
            resume: true,
        }
    }
}

/// A header value with an optional `{subscriber}` placeholder.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeaderTemplate {
    /// Before the placeholder (or the whole value).
    pub prefix: String,
    /// After the placeholder; `None` when there is none.
    pub suffix: Option<String>,
}

/// One request header a scenario adds (`headers = { ... }`). Serialized only into the spec a
/// fleet worker process reads on its stdin.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExtraHeader {
    /// As written.
    pub name: String,
    /// The value, perhaps per subscriber.
    pub value: HeaderTemplate,
    /// Read from the environment (`env:NAME`): never shown.
    pub secret: bool,
}

impl fmt::Debug for ExtraHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.secret {
            write!(f, "{}: <redacted>", self.name)
        } else {
            write!(
                f,
                "{}: {}{}",
                self.name,
                self.value.prefix,
                self.value
                    .suffix
                    .as_ref()
                    .map_or(String::new(), |s| format!("{{subscriber}}{s}"))
            )
        }
    }
}

/// The webhook model's settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Built-in receiver or an external URL.
    pub target: WebhookTarget,
    /// Keep-alive pool or fresh connection per attempt.
    pub connection: ConnectionMode,
    /// Connections (keep-alive) or attempts in flight (fresh), over all workers.
    pub pool: usize,
    /// Signing scheme.
    pub signature: SignatureScheme,
    /// Signing secret; generated per run for the built-in receiver when not given.
    pub secret: Option<Secret>,
    /// Per-attempt timeout (connect + request + response).
    pub timeout_ns: u64,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// How long to wait after the last scheduled send for retries and answers.
    pub drain_ns: u64,
    /// Generator threads; `None` = one per core.
    pub workers: Option<usize>,
    /// Deliveries allowed to wait for a free connection before new ones are dropped.
    pub max_backlog: usize,
    /// A delivery whose first attempt has not started this long after its intended time is
    /// dropped: past capacity, the generator sends what is recent instead of a backlog it can
    /// never catch up on.
    pub max_wait_ns: u64,
    /// TLS, when the url is `https://` or the built-in receiver is asked to serve it.
    pub tls: Option<TlsSettings>,
    /// Extra request headers, in file order.
    pub headers: Vec<ExtraHeader>,
}

impl Scenario {
    /// The push fleet's settings of `model` (WebSocket, server-sent events or long polling).
    pub fn push_fleet(&self, model: crate::model_kind::ModelKind) -> Option<&WebSocketConfig> {
        use crate::model_kind::ModelKind;
        match model {
            ModelKind::Webhook => None,
            ModelKind::WebSocket => self.websocket.as_ref(),
            ModelKind::Sse => self.sse.as_ref(),
            ModelKind::LongPoll => self.longpoll.as_ref(),
        }
    }

    /// Whether the scenario has `model`'s table.
    pub fn enables(&self, model: crate::model_kind::ModelKind) -> bool {
        match model {
            crate::model_kind::ModelKind::Webhook => self.webhook.is_some(),
            m => self.push_fleet(m).is_some(),
        }
    }
}

/// How a push fleet's connections speak: the same fleet, ramp, reconnects and publish path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushProtocol {
    /// WebSocket (RFC 6455): `[websocket]`.
    #[default]
    WebSocket,
    /// Server-sent events (a held `text/event-stream` response): `[sse]`.
    Sse,
    /// Long polling (a request held until events arrive, then asked again): `[longpoll]`.
    #[serde(rename = "longpoll")]
    LongPoll,
}

impl PushProtocol {
    /// The scenario table (and the prefix of its keys in messages).
    pub fn section(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::Sse => "sse",
            Self::LongPoll => "longpoll",
        }
    }

    /// The model it runs as.
    pub fn model(self) -> crate::model_kind::ModelKind {
        match self {
            Self::WebSocket => crate::model_kind::ModelKind::WebSocket,
            Self::Sse => crate::model_kind::ModelKind::Sse,
            Self::LongPoll => crate::model_kind::ModelKind::LongPoll,
        }
    }
}

/// What the WebSocket fleet does with its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WsMode {
    /// The server pushes each event down its subscriber's connection.
    Push,
    /// Each event is sent by its subscriber's client and echoed back.
    Echo,
    /// Connections are only held, with heartbeats.
    Idle,
}

impl WsMode {
    /// Name as written in scenarios.
    pub fn name(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Echo => "echo",
            Self::Idle => "idle",
        }
    }
}

/// Reconnect backoff: `initial * 2^n` capped at `max`, with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReconnectPolicy {
    /// Wait before the first reconnect.
    pub initial_ns: u64,
    /// Cap.
    pub max_ns: u64,
    /// Randomisation.
    pub jitter: Jitter,
}

impl ReconnectPolicy {
    /// As a retry policy without an attempt limit (for the shared backoff function).
    pub fn as_retry(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: u32::MAX,
            initial_ns: self.initial_ns,
            max_ns: self.max_ns,
            jitter: self.jitter,
            schedule_ns: Vec::new(),
            time_scale: 1.0,
        }
    }
}

/// A one-off fault of the built-in WebSocket server: drop connections at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropFault {
    /// When, from the start of the event stream.
    pub at_ns: u64,
    /// Per-mille of connections dropped (1000 = all).
    pub per_mille: u32,
    /// Close code sent; 0 resets the connection without a close frame.
    pub code: u16,
}

/// The built-in WebSocket server's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WsServerConfig {
    /// Server processes sharing the port; `None` = enough for the connection count.
    pub processes: Option<usize>,
    /// Upgrades must carry it (`Authorization: Bearer <token>` or `?token=`); others get 401.
    pub token: Option<Secret>,
    /// Drop connections once.
    pub drop: Option<DropFault>,
    /// Hold every push for a window once (slow consumer / backpressure); the backlog follows.
    pub stall: Option<Stall>,
}

/// Where the fleet connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsTarget {
    /// The harness starts its own server processes.
    Builtin(WsServerConfig),
    /// Someone else's server.
    External(UrlTemplate),
}

impl WsTarget {
    /// The harness starts this target itself.
    pub fn is_builtin(&self) -> bool {
        matches!(self, Self::Builtin(_))
    }
}

/// The WebSocket model's settings.
#[derive(Debug, Clone)]
pub struct WebSocketConfig {
    /// Built-in or external server.
    pub target: WsTarget,
    /// push, echo or idle.
    pub mode: WsMode,
    /// New connections per second during the ramp.
    pub connect_rate: f64,
    /// Heartbeat period; a ping unanswered for this long marks the connection dead.
    pub ping_interval_ns: u64,
    /// Reconnect backoff.
    pub reconnect: ReconnectPolicy,
    /// Text message sent after connecting (`{subscriber}` replaced).
    pub subscribe: Option<String>,
    /// How long after the last event to wait for stragglers before closing.
    pub drain_ns: u64,
    /// Push: an event not published this long after its intended time is dropped (counted,
    /// never sent), so past capacity the pushes stay recent instead of an ever later backlog.
    pub max_wait_ns: u64,
    /// Connections one worker may hold; `None` = derived from the open-files limit.
    pub connections_per_worker: Option<usize>,
    /// External push servers: JSON pointer to the event time (microseconds since the epoch).
    pub timestamp_field: Option<String>,
    /// External push servers: JSON pointer to the per-subscriber sequence number.
    pub sequence_field: Option<String>,
    /// Extra headers on the upgrade request, in file order.
    pub headers: Vec<ExtraHeader>,
    /// TLS (`wss://`, or `tls` with the built-in server); `None` = plaintext.
    pub tls: Option<TlsSettings>,
    /// WebSocket (`[websocket]`), server-sent events (`[sse]`) or long polling (`[longpoll]`).
    pub protocol: PushProtocol,
    /// Long polling's own settings (`None` for the other protocols).
    pub poll: Option<PollSettings>,
}

/// How a long-polling client asks (`[longpoll]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PollSettings {
    /// How long the server may hold a poll with nothing to say; the client waits this plus a
    /// margin before it calls the poll lost.
    pub hold_ns: u64,
    /// A new connection for every poll (`connection = "fresh"`) instead of keep-alive.
    pub fresh: bool,
    /// External servers: JSON pointer to the answer's array of events.
    pub events_field: String,
}

/// One thing wrong with a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// Dotted key path (`workload.duration`), empty for whole-file problems.
    pub key: String,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.key.is_empty()) {
            (Some(line), false) => write!(f, "line {line}: `{}`: {}", self.key, self.message),
            (Some(line), true) => write!(f, "line {line}: {}", self.message),
            (None, false) => write!(f, "`{}`: {}", self.key, self.message),
            (None, true) => write!(f, "{}", self.message),
        }
    }
}

/// Every problem found in one scenario file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ScenarioError {
    /// The file, or `<default>` for the embedded scenario.
    pub origin: String,
    /// All problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {n} problem{} in the scenario:",
            self.origin,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

/// Reads and validates a scenario file, resolving `env:` secrets from the process environment.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ScenarioError {
        origin: origin.clone(),
        problems: vec![Problem {
            line: None,
            key: String::new(),
            message: format!("cannot read the file: {e}"),
        }],
    })?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("scenario");
    from_bytes(&bytes, &origin, stem, &|name| std::env::var(name).ok())
}

/// Validates a scenario file's contents as [`load`] does (UTF-8 first, then [`parse`]); `origin`
/// names it in the error, `stem` is the scenario's name when the file gives none.
pub fn from_bytes(
    bytes: &[u8],
    origin: &str,
    stem: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Scenario, ScenarioError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let valid = std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid up to here");
        ScenarioError {
            origin: origin.to_string(),
            problems: vec![Problem {
                line: Some(valid.matches('\n').count() + 1),
                key: syntax::key_at(valid, valid.len()).unwrap_or_default(),
                message: format!(
                "the file is not UTF-8 text (invalid byte at offset {}); scenario files are TOML",
                e.valid_up_to()
            ),
            }],
        }
    })?;
    parse(text, stem, env).map_err(|problems| ScenarioError {
        origin: origin.to_string(),
        problems,
    })
}

impl Scenario {
    /// The scenario text with any secret written literally replaced, for `scenario.toml` in the
    /// results (an `env:NAME` reference is kept: it names the variable, not the secret): the
    /// webhook secret, the WebSocket server's token, and header values that carry credentials
    /// (`Authorization`, `Cookie`, or a name with `token`, `secret` or `key` in it).
    pub fn redacted_source(&self) -> String {
        let Ok(mut doc) = self.source.parse::<toml_edit::DocumentMut>() else {
            return "# (the scenario text could not be re-read; left out)\n".into();
        };
        let literal = doc
            .get("webhook")
            .and_then(|w| w.get("secret"))
            .and_then(|s| s.as_str())
            .is_some_and(|s| !s.starts_with("env:"));
        if literal {
            doc["webhook"]["secret"] = toml_edit::value("<redacted>");
        }
        let token = doc
            .get("websocket")
            .and_then(|w| w.get("server"))
            .and_then(|s| s.get("token"))
            .and_then(|t| t.as_str())
            .is_some_and(|t| !t.starts_with("env:"));
        if token {
            doc["websocket"]["server"]["token"] = toml_edit::value("<redacted>");
        }
        let credential = |name: &str| {
            let n = name.to_ascii_lowercase();
            ["authorization", "proxy-authorization", "cookie"].contains(&n.as_str())
                || ["token", "secret", "key"].iter().any(|w| n.contains(w))
        };
        for model in ["webhook", "websocket"] {
            let Some(headers) = doc
                .get_mut(model)
                .and_then(|m| m.get_mut("headers"))
                .and_then(|h| h.as_table_like_mut())
            else {
                continue;
            };
            for (name, value) in headers.iter_mut() {
                let literal = value.as_str().is_some_and(|v| !v.starts_with("env:"));
                if literal && credential(name.get()) {
                    *value = toml_edit::value("<redacted>");
                }
            }
        }
        doc.to_string()
    }
}

/// The embedded default scenario.
pub fn default_scenario() -> Scenario {
    parse(DEFAULT_SCENARIO, "quick", &|name| std::env::var(name).ok())
        .expect("the embedded default scenario is valid (checked by a test)")
}

/// The scenarios compiled in, by the name `pushbench run NAME` takes: `quick` (the default, on
/// loopback) and `wan` (every model behind an emulated 50 ms link, over TLS; needs root).
pub const EMBEDDED: [(&str, &str); 2] = [
    ("quick", DEFAULT_SCENARIO),
    ("wan", include_str!("../../scenarios/wan.toml")),
];

/// A scenario file, or, when no file has that name, the embedded scenario of that name.
pub fn load_or_embedded(path: &Path) -> Result<Scenario, ScenarioError> {
    let named = path.to_str().filter(|_| !path.exists()).and_then(|name| {
        EMBEDDED
            .iter()
            .find(|(n, _)| *n == name || format!("{n}.toml") == name)
    });
    match named {
        Some((name, text)) => from_bytes(
            text.as_bytes(),
            &format!("the embedded scenario `{name}`"),
            name,
            &|k| std::env::var(k).ok(),
        ),
        None => load(path),
    }
}
