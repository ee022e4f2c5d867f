//! Recording: per-worker histograms and counters, swapped at interval boundaries and merged.
//!
//! A worker records into its own [`IntervalStats`] (plain fields, no locks) and, at each 1 s
//! boundary, hands the whole thing to the collector and starts a fresh twin (`new_from`, fixed
//! bounds, never resized). The collector merges with `add`; percentiles are derived only at the
//! end, from merged histograms, never averaged. Each record lands in one of two phases, warm-up or
//! measured, so the summary leaves the warm-up out while the time series shows it.

pub mod collect;
pub mod error_kind;
pub mod hist;
pub mod resources;
pub mod results;
pub mod saturation;
pub mod wire;

use hdrhistogram::Histogram;

pub use error_kind::ErrorKind;
pub use hist::{decode_hist, encode_hist, new_hist, Percentiles};

/// Warm-up phase index.
pub const WARMUP: usize = 0;
/// Measured phase index.
pub const MEASURED: usize = 1;

/// Counter slots of a generator worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Deliveries whose intended time came.
    Offered = 0,
    /// Attempts started (first tries and retries).
    Attempts,
    /// First attempts started.
    Sent,
    /// Deliveries acknowledged with 2xx.
    Delivered,
    /// Deliveries that ended without 2xx (after all retries, or still pending at the end).
    Failed,
    /// Of `Failed`, those still pending when the run ended.
    Unfinished,
    /// Retry attempts scheduled.
    Retries,
    /// Deliveries dropped because the backlog was full (also counted in `Failed`).
    Dropped,
    /// First attempts that started more than [`LATE_NS`] after their intended time.
    LateSends,
    /// Connections opened.
    Connects,
    /// Connections that failed to open.
    ConnectErrors,
    /// Bytes written.
    BytesOut,
    /// Bytes read.
    BytesIn,
    /// WebSocket: events missing from a subscriber's sequence.
    Gaps,
    /// WebSocket: events that arrived after a later one (or twice).
    Reordered,
    /// Connections opened again after one was lost.
    Reconnects,
    /// WebSocket: connections declared dead after a ping went unanswered.
    PongsMissed,
    /// WebSocket: connections the server closed (close frame received).
    ServerCloses,
    /// WebSocket: connections lost without a close frame.
    Disconnects,
    /// WebSocket: server closes with 1000 (normal).
    Close1000,
    /// ... 1001 (going away).
    Close1001,
    /// ... 1008 (policy violation).
    Close1008,
    /// ... 1009 (message too big).
    Close1009,
    /// ... 1011 (server error).
    Close1011,
    /// ... any other code.
    CloseOther,
    /// Webhook: deliveries given up because their endpoint answered 410 Gone (now or before).
    Abandoned,
    /// Webhook: endpoints disabled after their first 410.
    EndpointsGone,
    /// WebSocket: connects attempted after a connection was lost (failed ones included).
    ReconnectAttempts,
    /// WebSocket push: nanoseconds the controller waited for the server to take its stream
    /// (the target pushing back).
    PublishBlockedNs,
    /// TLS handshakes that ran in full.
    TlsFull,
    /// TLS handshakes that resumed an earlier session.
    TlsResumed,
    /// Push: events published again when their subscriber resumed after a lost stream or
    /// poll (from the publisher's backlog).
    Replayed,
    /// Long polling: polls sent.
    Polls,
    /// Long polling: answers without events (the hold ran out).
    EmptyPolls,
    /// Long polling: answers that carried events.
    Answers,
    /// Long polling: answers without an array at the events pointer.
    MissingPointer,
    /// First error-kind slot; `ErrorBase + kind as usize`.
    ErrorBase,
}

/// First attempts-per-event slot (after the error kinds).
const ATTEMPTS_BASE: usize = Counter::ErrorBase as usize + ErrorKind::ALL.len();

/// Slots of the attempts-per-event histogram: slot n counts deliveries that ended after n
/// attempts; the last slot also holds every count above it.
pub const ATTEMPT_SLOTS: usize = 32;

/// Number of counter slots (the error kinds follow `ErrorBase`, then the attempt slots).
pub const COUNTERS: usize = ATTEMPTS_BASE + ATTEMPT_SLOTS;

/// A send that starts later than this after its intended time counts as late.
pub const LATE_NS: u64 = 1_000_000;

/// Histograms and counters of one phase.
#[derive(Debug, Clone)]
pub struct PhaseStats {
    /// Intended time -> response (corrected).
    pub ack: Histogram<u64>,
    /// Actual send -> response (uncorrected).
    pub ack_uncorrected: Histogram<u64>,
    /// TCP connect time of each new connection.
    pub connect: Histogram<u64>,
    /// TLS handshake time of each new connection (after its TCP connect).
    pub tls_handshake: Histogram<u64>,
    /// Intended time -> first attempt started (the pacer's and the pool's lag).
    pub lag: Histogram<u64>,
    /// WebSocket ping -> pong round trips.
    pub rtt: Histogram<u64>,
    /// WebSocket: latency of events intended during a fault (a stall, or a drop until every
    /// connection was back).
    pub backlog: Histogram<u64>,
    /// Counter slots, indexed by [`Counter`].
    pub counters: [u64; COUNTERS],
}

impl PhaseStats {
    /// Empty.
    pub fn new() -> Self {
        Self {
            ack: new_hist(),
            ack_uncorrected: new_hist(),
            connect: new_hist(),
            tls_handshake: new_hist(),
            lag: new_hist(),
            rtt: new_hist(),
            backlog: new_hist(),
            counters: [0; COUNTERS],
        }
    }

    /// Adds another phase's records into this one.
    pub fn add(&mut self, other: &PhaseStats) {
        self.ack.add(&other.ack).expect("same bounds");
        self.ack_uncorrected
            .add(&other.ack_uncorrected)
            .expect("same bounds");
        self.connect.add(&other.connect).expect("same bounds");
        self.tls_handshake
            .add(&other.tls_handshake)
            .expect("same bounds");
        self.lag.add(&other.lag).expect("same bounds");
        self.rtt.add(&other.rtt).expect("same bounds");
        self.backlog.add(&other.backlog).expect("same bounds");
        for (a, b) in self.counters.iter_mut().zip(other.counters.iter()) {
            *a += b;
        }
    }

    /// A counter's value.
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize]
    }

    /// Counts one failed attempt of a kind.
    #[inline]
    pub fn bump_error(&mut self, kind: ErrorKind) {
        self.counters[Counter::ErrorBase as usize + kind as usize] += 1;
    }

    /// Failed attempts of a kind.
    pub fn errors(&self, kind: ErrorKind) -> u64 {
        self.counters[Counter::ErrorBase as usize + kind as usize]
    }

    /// Counts one delivery that ended (delivered, failed or abandoned) after `attempts` attempts.
    #[inline]
    pub fn record_attempts(&mut self, attempts: u32, deliveries: u64) {
        let slot = (attempts as usize).min(ATTEMPT_SLOTS - 1);
        self.counters[ATTEMPTS_BASE + slot] += deliveries;
    }

    /// Deliveries by the number of attempts they ended after (index = attempts).
    pub fn attempts_per_delivery(&self) -> &[u64] {
        &self.counters[ATTEMPTS_BASE..]
    }

    /// Adds to a counter.
    #[inline]
    pub fn bump(&mut self, c: Counter, by: u64) {
        self.counters[c as usize] += by;
    }
}

impl Default for PhaseStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Everything one worker recorded during one interval.
#[derive(Debug, Clone, Default)]
pub struct IntervalStats {
    /// Warm-up and measured records.
    pub phases: [PhaseStats; 2],
    /// Connections open at the end of the interval (a gauge, summed over workers).
    pub open_connections: u64,
    /// Most connections open at once during the interval (summed over workers' highs):
    /// short-lived fresh connections that a gauge at the interval's end would miss.
    pub peak_connections: u64,
    /// Deliveries in flight or queued at the end of the interval.
    pub backlog: u64,
    /// Fleet workers that got all their connections up for the first time in this interval.
    pub ramps_done: u64,
    /// The latest monotonic instant at which one of them did.
    pub ramp_done_mono: u64,
    /// Resident memory of worker processes before their first connection (summed; reported
    /// once), the baseline for memory per connection.
    pub rss_baseline_bytes: u64,
    /// Monotonic instant of the latest measured delivery in the interval (0 = none).
    pub last_delivery_mono: u64,
    /// WebSocket: monotonic instant a held connection was first lost after the ramp (0 = none).
    pub first_loss_mono: u64,
    /// WebSocket: the latest instant a worker had every connection back after losing some.
    pub recovered_mono: u64,
    /// WebSocket: connections not up when the run closed them (final reports only).
    pub down_at_close: u64,
}

impl IntervalStats {
    /// Adds another worker's interval into this one.
    pub fn add(&mut self, other: &IntervalStats) {
        for (a, b) in self.phases.iter_mut().zip(other.phases.iter()) {
            a.add(b);
        }
        self.open_connections += other.open_connections;
        self.peak_connections += other.peak_connections;
        self.backlog += other.backlog;
        self.ramps_done += other.ramps_done;
        self.ramp_done_mono = self.ramp_done_mono.max(other.ramp_done_mono);
        self.rss_baseline_bytes += other.rss_baseline_bytes;
        self.last_delivery_mono = self.last_delivery_mono.max(other.last_delivery_mono);
        self.first_loss_mono = match (self.first_loss_mono, other.first_loss_mono) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.recovered_mono = self.recovered_mono.max(other.recovered_mono);
        self.down_at_close += other.down_at_close;
    }

    /// A counter summed over both phases.
    pub fn total(&self, c: Counter) -> u64 {
        self.phases[WARMUP].get(c) + self.phases[MEASURED].get(c)
    }

    /// Both phases' histograms of one kind merged (for the time series).
    pub fn merged(&self, pick: impl Fn(&PhaseStats) -> &Histogram<u64>) -> Histogram<u64> {
        let mut h = pick(&self.phases[WARMUP]).clone();
        h.add(pick(&self.phases[MEASURED])).expect("same bounds");
        h
    }
}

/// One interval's records from one worker (thread or process).
#[derive(Debug)]
pub struct WorkerReport {
    /// Sender.
    pub worker: u64,
    /// Interval number (0 = the first second).
    pub interval: u64,
    /// The records.
    pub stats: IntervalStats,
    /// True for the worker's final report.
    pub last: bool,
    /// True when the worker ended without its final report (sent by [`Reporter`]'s drop).
    pub died: bool,
}

/// One worker's end of the report channel. Dropped before the worker's final report (a thread
/// unwinding from a panic, a worker process's reader at end of file, a controller that failed),
/// it tells the collector the worker is gone, so the run ends at once, incomplete (exit 3),
/// instead of waiting for a report that never comes.
#[derive(Debug)]
pub struct Reporter {
    tx: tokio::sync::mpsc::UnboundedSender<WorkerReport>,
    worker: u64,
    finished: std::cell::Cell<bool>,
}

impl Reporter {
    /// The sending end for worker number `worker`.
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<WorkerReport>, worker: u64) -> Self {
        Self {
            tx,
            worker,
            finished: std::cell::Cell::new(false),
        }
    }

    /// Sends one report; false when the collector has gone (the run was aborted).
    pub fn send(&self, report: WorkerReport) -> bool {
        self.finished.set(self.finished.get() | report.last);
        self.tx.send(report).is_ok()
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if !self.finished.get() {
            let _ = self.tx.send(WorkerReport {
                worker: self.worker,
                interval: 0,
                stats: IntervalStats::default(),
                last: true,
                died: true,
            });
        }
    }
}

#[cfg(test)]
impl WorkerReport {
    /// A report of `delivered` deliveries offered and delivered in one interval (tests).
    pub fn delivering(worker: u64, interval: u64, delivered: u64, last: bool) -> Self {
        let mut stats = IntervalStats::default();
        stats.phases[MEASURED].bump(Counter::Offered, delivered);
        stats.phases[MEASURED].bump(Counter::Delivered, delivered);
        Self {
            worker,
            interval,
            stats,
            last,
            died: false,
        }
    }
}

/// Records a latency in microseconds from two monotonic instants in nanoseconds.
#[inline]
pub fn record_ns(h: &mut Histogram<u64>, from_ns: u64, to_ns: u64) {
    h.saturating_record((to_ns.saturating_sub(from_ns) / 1_000).max(1));
}

/// Deliveries completed while the measured window was open, counted by interval: the
/// throughput a user compares with wrk's (requests completed per second of the run), whatever
/// the completed deliveries' intended times. Past capacity the generator's queue shifts every
/// delivery later, so counting by intended time would charge the warm-up's backlog to the
/// measured window; counting completions does not, and a backlog finished after the window
/// still does not count as keeping up.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompletionWindow {
    from_s: f64,
    to_s: f64,
    delivered: u64,
    sent: u64,
    covered_s: f64,
}

impl CompletionWindow {
    /// The measured window, in seconds on the intervals' clock.
    pub fn new(from_s: f64, to_s: f64) -> Self {
        Self {
            from_s,
            to_s,
            ..Self::default()
        }
    }

    /// Adds one interval's completions and first sends if the interval lies inside the window.
    pub fn add(&mut self, start_s: f64, end_s: f64, stats: &IntervalStats) {
        const SLACK_S: f64 = 1e-6;
        if start_s + SLACK_S >= self.from_s && end_s <= self.to_s + SLACK_S && end_s > start_s {
            self.delivered += stats.total(Counter::Delivered);
            self.sent += stats.total(Counter::Sent);
            self.covered_s += end_s - start_s;
        }
    }

    /// Completions per second over the whole intervals inside the window; `None` when no whole
    /// interval fits (a run shorter than one interval).
    pub fn rate(&self) -> Option<f64> {
        (self.covered_s > 0.5).then(|| self.delivered as f64 / self.covered_s)
    }

    /// First sends per second over the same intervals.
    pub fn sent_rate(&self) -> Option<f64> {
        (self.covered_s > 0.5).then(|| self.sent as f64 / self.covered_s)
    }
}
