//! The results directory: `summary.json`, `summary.csv`, `timeseries.csv`, `percentiles.csv`
//! (the `.hlog` interval log is written as the run goes, by the collector).
//!
//! Every struct here reads with `#[serde(default)]`, so results written by an earlier version
//! (with fewer fields) still load in `report` and `compare`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::Percentiles;
use crate::model_kind::ModelKind;

/// The machine the run happened on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostInfo {
    /// Logical CPUs.
    pub cores: usize,
    /// Total memory.
    pub memory_bytes: u64,
    /// `uname -r`.
    pub kernel: String,
    /// Host name.
    pub hostname: String,
}

impl HostInfo {
    /// Reads this machine's facts from /proc.
    pub fn current() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            kernel: read("/proc/sys/kernel/osrelease"),
            hostname: read("/proc/sys/kernel/hostname"),
        }
    }
}

/// Connections a model used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Connections {
    /// Connections (or attempts in flight) the scenario allows.
    pub target: u64,
    /// Most open at once.
    pub peak: u64,
    /// Connections opened in all.
    pub opened: u64,
    /// Connection attempts that failed.
    pub failed: u64,
    /// Connections opened again after one was lost (keep-alive only).
    pub reconnects: u64,
}

/// CPU and memory of one role, summed over its processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoleCost {
    /// User + system CPU seconds during the run.
    pub cpu_s: f64,
    /// Highest resident memory seen (sampled each interval).
    pub peak_rss_bytes: u64,
}

/// Generator and target cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// The harness's load generator.
    pub generator: RoleCost,
    /// The system under test (only measured for built-in targets).
    pub target: RoleCost,
    /// The emulated link between them (`[network]` only): its pump thread's CPU, taken out of
    /// the generator's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<RoleCost>,
}

/// One model's figures. Counts cover the measured part of the run (warm-up excluded).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSummary {
    /// Which model.
    pub model: ModelKind,
    /// Scheduled deliveries per second.
    pub target_rate: f64,
    /// Deliveries acknowledged per second.
    pub achieved_rate: f64,
    /// Deliveries scheduled (events x fan-out).
    pub events: u64,
    /// Acknowledged (2xx).
    pub delivered: u64,
    /// Ended without 2xx, after all retries or still pending at the end.
    pub failed: u64,
    /// Given up because the endpoint answered 410 Gone (to this delivery or an earlier one):
    /// never retried. `delivered + failed + abandoned == events`.
    pub abandoned: u64,
    /// Endpoints disabled after answering 410.
    pub endpoints_gone: u64,
    /// Of `failed`, those still pending when the run ended.
    pub unfinished: u64,
    /// Of `failed`, those dropped because the backlog was full.
    pub dropped: u64,
    /// Retry attempts.
    pub retries: u64,
    /// Attempts each delivery took until it ended (delivered, failed or abandoned; 0 = never
    /// sent). Plain counts, not microseconds.
    pub attempts_per_event: Percentiles,
    /// Deliveries by attempts: entry n counts those that ended after n attempts (the last
    /// possible entry, 31, also holds more).
    pub attempts_histogram: Vec<u64>,
    /// Deliveries the receiver had already accepted.
    pub duplicates: u64,
    /// First attempts that started more than 1 ms after their intended time.
    pub late_sends: u64,
    /// Where `latency_us` is measured: `"receiver"` (body received) or `"ack"` (response received).
    pub latency_source: String,
    /// Headline delivery latency, from the intended time (corrected).
    pub latency_us: Percentiles,
    /// The same from the actual send (uncorrected).
    pub uncorrected_latency_us: Percentiles,
    /// Intended time -> response received.
    pub ack_latency_us: Percentiles,
    /// Intended time of the first attempt -> the final 2xx, retries and their waits included
    /// (the provider's view; for the WebSocket model, the same as `latency_us`).
    pub time_to_delivery_us: Percentiles,
    /// Actual send -> response received.
    pub ack_uncorrected_latency_us: Percentiles,
    /// New connection set-up time (the TCP connect).
    pub connect_us: Percentiles,
    /// TLS handshake time of each new connection, after its TCP connect (empty in plaintext).
    #[serde(default)]
    pub tls_handshake_us: Percentiles,
    /// TLS: handshakes in full and resumed, protocol version and cipher (absent in plaintext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSummary>,
    /// Intended time -> first attempt started.
    pub schedule_lag_us: Percentiles,
    /// Connection counts.
    pub connections: Connections,
    /// CPU and memory.
    pub resources: Resources,
    /// Request and response bytes on the wire per delivery (HTTP framing included).
    pub bytes_per_event: f64,
    /// Failed attempts by kind.
    pub errors: BTreeMap<String, u64>,
    /// What the built-in receiver counted (absent for external targets).
    pub receiver: Option<ReceiverCounters>,
    /// WebSocket-only figures.
    pub websocket: Option<WsSummary>,
    /// The same figures for the server-sent events fleet (its streams are held like
    /// WebSocket connections; pong RTT and echo do not apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sse: Option<WsSummary>,
    /// The same figures for long polling, with `polling` (polls per event, empty answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longpoll: Option<WsSummary>,
    /// Whether the generator kept the offered schedule, and if not, who was the limit.
    pub saturation: crate::record::saturation::Saturation,
    /// The emulated network the built-in targets sat behind (`[network]` only): its settings,
    /// what it carried and dropped each way, and whether it kept its own schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSummary>,
}

/// What the emulated link did during one model's run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkSummary {
    /// The settings in words (`rtt 40ms, loss 1%`).
    pub settings: String,
    /// Added round-trip time, us.
    pub rtt_us: u64,
    /// One-way delay variation, us.
    pub jitter_us: u64,
    /// Fraction of packets dropped each way.
    pub loss: f64,
    /// Bottleneck rate each way (bits per second), when set.
    pub bandwidth_bps: Option<u64>,
    /// Generator to targets.
    pub up: LinkDirection,
    /// Targets to generator.
    pub down: LinkDirection,
    /// How late the link let packets out against its own schedule, us: what it adds beyond
    /// the settings (at `rtt = 0`, all it adds).
    pub link_late_us: Percentiles,
    /// The same as a histogram (base64 of its V2 deflate encoding), so `merge` adds shards'
    /// histograms instead of their percentiles.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub link_late_hist: String,
    /// The link's CPU per packet carried (both ways), ns.
    pub cpu_ns_per_packet: f64,
    /// The link ran at real-time priority (SCHED_FIFO): it does whenever it delays or shapes.
    pub realtime: bool,
    /// False when the link could not keep its schedule (p99 lateness past 1 ms): the latency
    /// then says more about the link than about the network it stands for.
    pub kept_schedule: bool,
}

/// One direction of the emulated link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LinkDirection {
    /// Packets offered to it.
    pub packets: u64,
    /// Their bytes (IP headers included).
    pub bytes: u64,
    /// Dropped by the random loss.
    pub lost: u64,
    /// Dropped at the bottleneck's full queue.
    pub queue_drops: u64,
    /// Bytes per second that got through (neither lost nor dropped), over the link's life.
    pub bytes_per_s: f64,
    /// Share of the time the bottleneck was sending (0 without `bandwidth`).
    pub utilization: f64,
}

/// Memory per held connection, from RSS growth over the ramp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PerConnection {
    /// Generator (client fleet) bytes per connection.
    pub generator: f64,
    /// Server bytes per connection (built-in server only).
    pub target: f64,
}

/// What only the WebSocket model has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WsSummary {
    /// push, echo or idle.
    pub mode: String,
    /// Events missing from subscribers' sequences.
    pub gaps: u64,
    /// Events that arrived out of order or twice.
    pub reordered: u64,
    /// Events the controller could not route because no server process held the subscriber.
    pub unrouted: u64,
    /// Close frames received from the server.
    pub server_closes: u64,
    /// The same by close code ("1000", "1001", "1008", "1009", "1011", "other").
    pub close_codes: BTreeMap<String, u64>,
    /// Connections lost without a close frame.
    pub disconnects: u64,
    /// Connections declared dead after an unanswered ping.
    pub pongs_missed: u64,
    /// Connects attempted after a connection was lost (failed ones included).
    pub reconnect_attempts: u64,
    /// Seconds from the first connection lost after the ramp until every subscriber was
    /// connected again (0 = none was lost; see `down_at_end` for a recovery that never came).
    pub recovery_s: f64,
    /// Connections not up when the run ended.
    pub down_at_end: u64,
    /// Latency of the events intended during a fault: a server stall, or a drop until every
    /// subscriber was back (the backlog and whatever was pushed during the storm).
    pub backlog_latency_us: Percentiles,
    /// Ping -> pong round trips.
    pub pong_rtt_us: Percentiles,
    /// Seconds from the first connect until every connection was up (0 = never all up).
    pub ramp_s: f64,
    /// Connections established per second during the ramp.
    pub connects_per_s: f64,
    /// RSS growth over the ramp divided by the connections held.
    pub memory_per_connection_bytes: PerConnection,
    /// Client worker threads or processes.
    pub fleet_workers: u64,
    /// Built-in server processes.
    pub server_processes: u64,
    /// What the built-in server counted.
    pub server: Option<ServerStats>,
    /// Events the publisher sent again when their subscriber resumed (an event stream's
    /// `Last-Event-ID`, a long poll's cursor): lost with a connection, or published while
    /// nobody held the subscriber.
    #[serde(default)]
    pub replayed: u64,
    /// Long polling's own figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling: Option<PollFigures>,
}

/// What long polling cost (`longpoll.polling` in `summary.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PollFigures {
    /// `keepalive` or `fresh`.
    pub connection: String,
    /// How long the server may hold an empty poll.
    pub hold_s: f64,
    /// Polls sent (measured window).
    pub polls: u64,
    /// Polls per delivered event: below 1, answers carry several events (batching).
    pub polls_per_event: f64,
    /// Events per answer that carried any.
    pub events_per_answer: f64,
    /// Answers without events (the hold ran out).
    pub empty_answers: u64,
    /// Answers that were not JSON or had no array at `events_field`.
    pub bad_answers: u64,
}

/// A threshold and how the run did against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    /// `metric condition`.
    pub expression: String,
    /// The metric's value in this run.
    pub observed: Option<f64>,
    /// Whether the condition held.
    pub pass: bool,
}

/// `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// UTC start, RFC 3339.
    pub started_at: String,
    /// Measured duration (warm-up excluded).
    pub duration_s: f64,
    /// Warm-up before it.
    pub warmup_s: f64,
    /// True when Ctrl-C cut the run short.
    pub interrupted: bool,
    /// Why the figures miss part of the run (a worker died), when they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// The machine.
    pub host: HostInfo,
    /// pushbench version.
    pub version: String,
    /// One entry per model that ran.
    pub models: Vec<ModelSummary>,
    /// Threshold verdicts.
    pub thresholds: Vec<ThresholdResult>,
    /// This run is one shard of a larger one (`run --shard I/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::shards::ShardInfo>,
    /// A merge of shards (`pushbench merge`): each one's record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<crate::shards::ShardInfo>,
}

/// A model's TLS handshakes and what they negotiated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSummary {
    /// Handshakes with a certificate exchange.
    pub full: u64,
    /// Handshakes that resumed an earlier session.
    pub resumed: u64,
    /// Negotiated protocol, e.g. `TLSv1.3` (from the probe before the run).
    pub version: String,
    /// Negotiated cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// Whether sessions were resumed when possible (`tls.resume`).
    pub resume: bool,
}

/// The built-in webhook receiver's cumulative counters, as its `/stats` reports them and the
/// summary's `receiver` block carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReceiverCounters {
    /// TCP connections that carried at least one delivery.
    pub connections: u64,
    /// HTTP requests to the hook path.
    pub requests: u64,
    /// First deliveries of an id answered 2xx.
    pub unique: u64,
    /// Repeated deliveries of an id already accepted (answered 2xx, not counted again).
    pub duplicates: u64,
    /// Signatures that did not verify (401).
    pub bad_signature: u64,
    /// Timestamps outside the tolerance (401).
    pub stale: u64,
    /// Bodies over the cap (413).
    pub too_large: u64,
    /// Request heads over the cap (431).
    pub headers_too_large: u64,
    /// Requests that were not valid HTTP (400).
    pub malformed: u64,
    /// Clients too slow to send a head (closed) or a body (408).
    pub timeouts: u64,
    /// Requests answered 503 on purpose.
    pub injected_failures: u64,
    /// Requests held by the stall window.
    pub stalled: u64,
    /// Body bytes received.
    pub body_bytes: u64,
    /// Requests answered 503 during an outage window.
    pub outage_unavailable: u64,
    /// Connections dropped unanswered during an outage window.
    pub outage_dropped: u64,
    /// Requests answered 429 (throttled).
    pub throttled: u64,
    /// Requests answered 410 (the endpoint is gone).
    pub gone: u64,
}

/// One built-in WebSocket server process's cumulative counters, as its control stream reports
/// them and the summary's `websocket.server` block carries them (summed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerStats {
    /// Connections held now.
    pub connections: u64,
    /// Upgrades completed.
    pub upgrades: u64,
    /// Events pushed to a subscriber.
    pub pushed: u64,
    /// Events for subscribers this process does not hold.
    pub not_connected: u64,
    /// Events dropped because the subscriber's send buffer was full (slow consumer).
    pub dropped_slow: u64,
    /// Messages echoed.
    pub echoed: u64,
    /// Pings answered.
    pub pongs: u64,
    /// Connections closed for protocol errors or oversized messages (the next three together).
    pub protocol_errors: u64,
    /// Closed with 1002: bad opcode, reserved bits, unmasked, fragments out of order, bad close.
    pub bad_frames: u64,
    /// Closed with 1007: text or a close reason that is not UTF-8.
    pub invalid_utf8: u64,
    /// Closed with 1009: a message over the size cap.
    pub oversized: u64,
    /// Handshakes refused: not HTTP, not an upgrade, or a head over the cap.
    pub malformed: u64,
    /// Handshakes not received in time (closed).
    pub timeouts: u64,
    /// Connections dropped on command.
    pub dropped: u64,
    /// Events queued during a stall and pushed after it (also in `pushed`).
    #[serde(default)]
    pub held: u64,
    /// Upgrades refused with 401: no `Authorization: Bearer <token>` (or `?token=`) matching
    /// the server's token.
    #[serde(default)]
    pub unauthorized: u64,
    /// Server-sent event streams opened.
    #[serde(default)]
    pub streams: u64,
    /// Long polls answered.
    #[serde(default)]
    pub polls: u64,
    /// Of those, answered without events (the hold ran out).
    #[serde(default)]
    pub empty_polls: u64,
}

impl ServerStats {
    /// Adds another process's counts.
    pub fn add(&mut self, o: &ServerStats) {
        self.connections += o.connections;
        self.upgrades += o.upgrades;
        self.pushed += o.pushed;
        self.not_connected += o.not_connected;
        self.dropped_slow += o.dropped_slow;
        self.echoed += o.echoed;
        self.pongs += o.pongs;
        self.protocol_errors += o.protocol_errors;
        self.bad_frames += o.bad_frames;
        self.invalid_utf8 += o.invalid_utf8;
        self.oversized += o.oversized;
        self.malformed += o.malformed;
        self.timeouts += o.timeouts;
        self.dropped += o.dropped;
        self.held += o.held;
        self.unauthorized += o.unauthorized;
        self.streams += o.streams;
        self.polls += o.polls;
        self.empty_polls += o.empty_polls;
    }
}

/// One `timeseries.csv` row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeseriesRow {
    /// Seconds since the start (interval end).
    pub t_s: f64,
    /// Model.
    pub model: ModelKind,
    /// Deliveries whose intended time fell in the interval.
    pub offered: u64,
    /// First attempts started.
    pub sent: u64,
    /// Acknowledged.
    pub delivered: u64,
    /// Failed attempts.
    pub errors: u64,
    /// Retries scheduled (WebSocket: reconnects).
    pub retries: u64,
    /// Open connections at the end of the interval.
    pub connections: u64,
    /// Headline latency of deliveries completed in the interval.
    pub p50_us: u64,
    /// 99th percentile of the same.
    pub p99_us: u64,
    /// Largest of the same.
    pub max_us: u64,
    /// Generator CPU over the interval (100 = one core).
    pub gen_cpu_pct: f64,
    /// Generator RSS.
    pub gen_rss_bytes: u64,
    /// Target CPU over the interval.
    pub target_cpu_pct: f64,
    /// Target RSS.
    pub target_rss_bytes: u64,
    /// Deliveries abandoned because their endpoint is gone (410); last, so the columns of the
    /// contract keep their places.
    #[serde(default)]
    pub abandoned: u64,
    /// Deliveries that ended failed in the interval (dropped, unfinished, out of retries; for
    /// WebSocket push, the events found missing). Over a whole run, `offered` adds up to
    /// `delivered + failed + abandoned`.
    #[serde(default)]
    pub failed: u64,
    /// Of `failed`, deliveries the generator never started (backlog full or waited too long;
    /// WebSocket: never published).
    #[serde(default)]
    pub dropped: u64,
}

/// Whether `path` (dotted, e.g. `latency_us.p99`) names a number in a model's summary entry:
/// the check thresholds get before any run.
pub fn is_numeric_metric(path: &str) -> bool {
    let mut example = ModelSummary {
        receiver: Some(ReceiverCounters::default()),
        websocket: Some(WsSummary::default()),
        longpoll: Some(WsSummary {
            polling: Some(PollFigures::default()),
            ..WsSummary::default()
        }),
        ..ModelSummary::default()
    };
    for kind in super::ErrorKind::ALL {
        example.errors.insert(kind.name().into(), 0);
    }
    example.errors.insert("dropped".into(), 0);
    example.field(path).is_some()
}

impl ModelSummary {
    /// The push fleet's figures: WebSocket or server-sent events.
    pub fn fleet(&self) -> Option<&WsSummary> {
        self.websocket
            .as_ref()
            .or(self.sse.as_ref())
            .or(self.longpoll.as_ref())
    }

    /// The number at a dotted path of this entry (`latency_us.p99`, `errors.timeout`), as
    /// `summary.json` spells it; `None` when there is none. The one lookup thresholds, `--slo`
    /// and scenario validation share.
    pub fn field(&self, path: &str) -> Option<f64> {
        let value = serde_json::to_value(self).ok()?;
        let pointer = format!("/{}", path.replace('.', "/"));
        value.pointer(&pointer)?.as_f64()
    }
}

/// Writes `summary.json` and `summary.csv`.
pub fn write_summary(dir: &Path, summary: &Summary) -> io::Result<()> {
    let mut f = io::BufWriter::new(File::create(dir.join("summary.json"))?);
    serde_json::to_writer_pretty(&mut f, summary)?;
    f.write_all(b"\n")?;
    f.flush()?;

    let mut w = csv::Writer::from_path(dir.join("summary.csv"))?;
    let (header, rows) = summary_table(summary);
    w.write_record(&header)?;
    for row in rows {
        w.write_record(&row)?;
    }
    w.flush()
}

/// The `summary.csv` header and one row per model: the summary's figures flattened.
pub fn summary_table(summary: &Summary) -> (Vec<String>, Vec<Vec<String>>) {
    let pct = ["p50", "p90", "p99", "p999", "p9999", "max"];
    let mut header: Vec<String> = [
        "model",
        "target_rate",
        "achieved_rate",
        "events",
        "delivered",
        "failed",
        "retries",
        "duplicates",
        "late_sends",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for metric in [
        "latency_us",
        "uncorrected_latency_us",
        "ack_latency_us",
        "connect_us",
    ] {
        header.extend(pct.iter().map(|p| format!("{metric}_{p}")));
    }
    header.extend(
        [
            "connections_peak",
            "connections_failed",
            "generator_cpu_s",
            "generator_peak_rss_bytes",
            "target_cpu_s",
            "target_peak_rss_bytes",
            "bytes_per_event",
            "abandoned",
            "attempts_per_event_mean",
            "attempts_per_event_max",
            "time_to_delivery_us_p50",
            "time_to_delivery_us_p99",
            "time_to_delivery_us_max",
            "recovery_s",
            "dropped",
            "unfinished",
            "generator_saturated",
            "sent_per_s",
            "saturation_reason",
            "tls_handshake_us_p50",
            "tls_handshake_us_p99",
            "tls_handshakes_full",
            "tls_handshakes_resumed",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let mut rows = Vec::new();
    for m in &summary.models {
        let mut row = vec![
            m.model.name().to_string(),
            format!("{:.1}", m.target_rate),
            format!("{:.1}", m.achieved_rate),
            m.events.to_string(),
            m.delivered.to_string(),
            m.failed.to_string(),
            m.retries.to_string(),
            m.duplicates.to_string(),
            m.late_sends.to_string(),
        ];
        for p in [
            &m.latency_us,
            &m.uncorrected_latency_us,
            &m.ack_latency_us,
            &m.connect_us,
        ] {
            row.extend([p.p50, p.p90, p.p99, p.p999, p.p9999, p.max].map(|v| v.to_string()));
        }
        row.extend([
            m.connections.peak.to_string(),
            m.connections.failed.to_string(),
            format!("{:.3}", m.resources.generator.cpu_s),
            m.resources.generator.peak_rss_bytes.to_string(),
            format!("{:.3}", m.resources.target.cpu_s),
            m.resources.target.peak_rss_bytes.to_string(),
            format!("{:.1}", m.bytes_per_event),
            m.abandoned.to_string(),
            format!("{:.2}", m.attempts_per_event.mean),
            m.attempts_per_event.max.to_string(),
            m.time_to_delivery_us.p50.to_string(),
            m.time_to_delivery_us.p99.to_string(),
            m.time_to_delivery_us.max.to_string(),
            format!("{:.3}", m.fleet().map_or(0.0, |w| w.recovery_s)),
            m.dropped.to_string(),
            m.unfinished.to_string(),
            m.saturation.generator.to_string(),
            format!("{:.1}", m.saturation.sent_per_s),
            m.saturation.reason.clone(),
            m.tls_handshake_us.p50.to_string(),
            m.tls_handshake_us.p99.to_string(),
            m.tls.as_ref().map_or(0, |t| t.full).to_string(),
            m.tls.as_ref().map_or(0, |t| t.resumed).to_string(),
        ]);
        rows.push(row);
    }
    (header, rows)
}

/// Appends the HDR percentile distribution of `h` to `percentiles.csv` rows.
pub fn percentile_rows(
    w: &mut csv::Writer<File>,
    model: ModelKind,
    metric: &str,
    h: &Histogram<u64>,
) -> io::Result<()> {
    if h.is_empty() {
        return Ok(());
    }
    // Five steps per halving of the distance to 100%, as HdrHistogram's percentile output does.
    for v in h.iter_quantiles(5) {
        w.write_record([
            model.name(),
            metric,
            &format!("{:.6}", v.quantile_iterated_to()),
            &v.value_iterated_to().to_string(),
            &v.count_since_last_iteration().to_string(),
        ])?;
    }
    Ok(())
}

/// Opens `percentiles.csv` with its header.
pub fn percentiles_writer(dir: &Path) -> io::Result<csv::Writer<File>> {
    let mut w = csv::Writer::from_path(dir.join("percentiles.csv"))?;
    w.write_record(["model", "metric", "quantile", "value_us", "count"])?;
    Ok(w)
}

/// Opens `timeseries.csv`; rows are serialized from [`TimeseriesRow`] (the header comes first).
pub fn timeseries_writer(dir: &Path) -> io::Result<csv::Writer<File>> {
    Ok(csv::Writer::from_path(dir.join("timeseries.csv"))?)
}

/// `yyyymmddThhmmssZ` and RFC 3339 forms of a Unix time in seconds, in UTC.
pub fn utc_stamps(unix_s: u64) -> (String, String) {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (
        format!("{y:04}{mo:02}{d:02}T{h:02}{m:02}{s:02}Z"),
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(utc_stamps(0).0, "19700101T000000Z");
        assert_eq!(utc_stamps(951_782_400).1, "2000-02-29T00:00:00Z");
        assert_eq!(utc_stamps(1_795_740_006).0, "20261127T004006Z");
    }
}
