//! A fleet worker's marching orders, serializable: worker processes read them from stdin.

use std::net::{IpAddr, SocketAddr};

use crate::clock::WallMap;
use crate::scenario::{PushProtocol, ReconnectPolicy, WsMode};
use crate::schedule::Schedule;
use crate::websocket::client::WsUrl;

/// One worker's marching orders (serializable: worker processes read it from stdin).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FleetSpec {
    /// This worker.
    pub worker: u64,
    /// Number of workers.
    pub workers: u64,
    /// All subscribers of the run; this worker holds `s % workers == worker`.
    pub subscribers: u64,
    /// Server address.
    pub addr: SocketAddr,
    /// URL template.
    pub url: WsUrl,
    /// Source addresses to connect from, used in turn (empty = the kernel's choice).
    pub source_ips: Vec<IpAddr>,
    /// push, echo or idle.
    pub mode: WsMode,
    /// This worker's share of the connect rate.
    pub connect_rate_per_sec: f64,
    /// Heartbeat period.
    pub ping_interval_ns: u64,
    /// Reconnect backoff.
    pub reconnect: ReconnectPolicy,
    /// t = 0 of the run (the ramp starts here; intervals count from here).
    pub ramp_start_mono: u64,
    /// When the event schedule starts.
    pub events_start_mono: u64,
    /// Events intended before this (wall-clock us) belong to the warm-up.
    pub warmup_end_real_us: u64,
    /// When connections are closed and the worker reports for the last time.
    pub close_at_mono: u64,
    /// The event schedule (echo mode sends its share of it).
    pub schedule: Schedule,
    /// Event size.
    pub payload_bytes: usize,
    /// Interval length.
    pub interval_ns: u64,
    /// Seed for keys, masks and jitter.
    pub seed: u64,
    /// Monotonic -> wall clock.
    pub wall: WallMap,
    /// Text message sent after connecting (`{subscriber}` replaced).
    pub subscribe: Option<String>,
    /// Extra headers on the upgrade request.
    #[serde(default)]
    pub headers: Vec<crate::scenario::ExtraHeader>,
    /// TLS (`wss://`): each worker builds its client from these.
    #[serde(default)]
    pub tls: Option<FleetTls>,
    /// WebSocket connections or server-sent event streams.
    #[serde(default)]
    pub protocol: PushProtocol,
    /// Report this process's memory before connecting (worker processes).
    pub report_rss_baseline: bool,
    /// External push servers: where time and sequence are in their JSON messages.
    pub fields: Option<JsonFields>,
    /// A server stall, wall-clock us `[from, to)`: events intended in it are the backlog.
    #[serde(default)]
    pub stall_real_us: Option<(u64, u64)>,
    /// Long polling: how to poll.
    #[serde(default)]
    pub poll: Option<crate::scenario::PollSettings>,
    /// The run's shard: the worker holds only subscribers it owns.
    #[serde(default)]
    pub shard: crate::schedule::Shard,
}

impl FleetSpec {
    /// This worker's subscribers: `first`, `first + step`, ... below `subscribers` (its share
    /// of its shard's: `subscriber % step == first`).
    pub fn stride(&self) -> (u64, u64) {
        (
            self.shard.index + self.shard.count * self.worker,
            self.shard.count * self.workers,
        )
    }

    /// How many subscribers this worker holds.
    pub fn held(&self) -> usize {
        let (first, step) = self.stride();
        self.subscribers.saturating_sub(first).div_ceil(step) as usize
    }
}

/// What a worker needs to speak TLS: the scenario's settings and, against the built-in
/// server, the CA made for the run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FleetTls {
    /// `[websocket] tls`.
    pub settings: crate::scenario::TlsSettings,
    /// The built-in server's CA (PEM).
    pub run_ca_pem: Option<String>,
}

/// JSON pointers into an external server's messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JsonFields {
    /// Microseconds since the Unix epoch at which the server meant (or sent) the event.
    pub timestamp: Option<String>,
    /// Per-subscriber sequence number.
    pub sequence: Option<String>,
}
