//! Delivery workers: open-loop pacing, a connection pool, signing and retries.
//!
//! Each worker is one OS thread (wrk2's model: a thread owns its connections and its recorders;
//! nothing is shared across threads but the stop flag and the report channel). Plaintext
//! workers run their own epoll loop ([`super::plain`]); TLS workers a current-thread tokio
//! runtime, with the pacer and the slots below as tasks. Both share this module's pacing,
//! queue, attempt bookkeeping and records. Inside a worker:
//!
//! - the **pacer** walks the pure schedule and puts each delivery on the ready queue once its
//!   intended time has come. It never waits for the target: if every connection is busy the
//!   queue grows, and the wait shows up in the corrected latency. While a slot is idle it wakes
//!   at each intended time (a timerfd, or the epoll loop's nanosecond timeout, so within
//!   microseconds); while every slot is busy nobody
//!   could take a delivery sooner, so it wakes once a millisecond and queues (or, past the
//!   backlog, counts as dropped) the whole overdue span at once. Either way it sleeps at least
//!   [`MIN_WAKE_GAP_NS`] between wakes, so a generator that is behind never spins through its
//!   schedule while its own connections wait for the thread. It also moves due retries onto
//!   the queue and hands the interval's records to the collector at every boundary;
//! - `pool / workers` **slots** each take deliveries off the queue and run attempts on their own
//!   connection (kept alive, or fresh per attempt), writing the request into a buffer they reuse.
//!
//! Latency is measured from the intended time (corrected) and from the actual send (uncorrected).

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Sleep;

use crate::clock::{mono_ns, PreciseTimer, WallMap};
use crate::record::{record_ns, Counter, IntervalStats, ATTEMPT_SLOTS, LATE_NS, MEASURED, WARMUP};
use crate::record::{ErrorKind, Reporter};
use crate::scenario::{ConnectionMode, RetryPolicy, UrlTemplate};
use crate::schedule::{Schedule, Shape, SplitMix64};
use crate::webhook::http::{Conn, Failure, Response};
use crate::webhook::payload::Payload;
use crate::webhook::retry::{retry_wait_ns, GoneEndpoints};
use crate::webhook::sign::SigningKey;

mod pacer;
use pacer::take_fresh;
pub(super) use pacer::Pacer;

/// What every worker needs to deliver, shared read-only.
#[derive(Debug)]
pub struct DeliverySpec {
    /// Resolved receiver address.
    pub addr: SocketAddr,
    /// URL template for the request path.
    pub url: UrlTemplate,
    /// `host:port` for the Host header.
    pub host_header: String,
    /// Keep-alive or fresh connections.
    pub connection: ConnectionMode,
    /// Slots (connections / attempts in flight) per worker.
    pub slots_per_worker: usize,
    /// Signing.
    pub key: SigningKey,
    /// Per-attempt timeout.
    pub timeout_ns: u64,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Endpoints that answered 410, shared by every worker.
    pub gone: GoneEndpoints,
    /// Time allowed after the last scheduled send.
    pub drain_ns: u64,
    /// Queued deliveries per worker beyond which new ones are dropped (bounds memory).
    pub max_backlog_per_worker: usize,
    /// A first attempt not started this long after its intended time is dropped instead.
    pub max_wait_ns: u64,
    /// Body size.
    pub payload_bytes: usize,
    /// Prefix of every event id in this run.
    pub run_id: u32,
    /// Seed for retry jitter.
    pub seed: u64,
    /// TLS, for an `https` target.
    pub tls: Option<Arc<crate::tls::ClientTls>>,
    /// Extra headers from the scenario.
    pub headers: Vec<crate::scenario::ExtraHeader>,
}

/// One worker's marching orders.
pub struct WorkerPlan {
    /// This worker's number.
    pub worker: u64,
    /// Number of workers.
    pub workers: u64,
    /// The delivery stream.
    pub schedule: Arc<Schedule>,
    /// Monotonic instant of t = 0.
    pub start_mono: u64,
    /// Warm-up length (records before it are kept apart).
    pub warmup_ns: u64,
    /// Interval length for hand-overs.
    pub interval_ns: u64,
    /// Monotonic -> wall clock.
    pub wall: WallMap,
    /// Delivery settings.
    pub spec: Arc<DeliverySpec>,
    /// Set on Ctrl-C: stop scheduling, finish briefly, report.
    pub stop: Arc<AtomicBool>,
    /// Where interval records go.
    pub tx: Reporter,
}

/// How long in-flight work may finish after Ctrl-C.
const STOP_GRACE_NS: u64 = 2_000_000_000;

/// How often the pacer looks at the schedule while every slot is busy: the overdue span is
/// queued or dropped in bulk, so the backlog, the offered count and the drops stay current.
const BUSY_TICK_NS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Job {
    intended: u64,
    index: u64,
    subscriber: u64,
    attempt: u32,
}

/// A delivery counted as out, from [`Local::take_off`] to [`Local::land`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Flight {
    /// Warm-up or measured.
    pub phase: usize,
    slot: usize,
}

/// A worker's state, shared by its pacer and its slots on the worker's one thread.
pub(super) struct Local {
    pub(super) spec: Arc<DeliverySpec>,
    pub(super) wall: WallMap,
    warmup_end: u64,
    /// First attempts whose intended time has come, oldest first.
    ready: RefCell<VecDeque<Job>>,
    /// Retries whose wait is over; taken before `ready` (they are older).
    retry_ready: RefCell<VecDeque<Job>>,
    ready_notify: Notify,
    /// Slots parked in [`next_job`] that nobody has woken yet.
    idle_slots: Cell<usize>,
    /// The pacer's last clock reading. While deliveries wait in the queue every slot is busy,
    /// so the pacer ticks at least once a millisecond: close enough to tell a delivery that
    /// waited past `max_wait`, without a clock read per delivery.
    pacer_now: Cell<u64>,
    retries: RefCell<BinaryHeap<Reverse<(u64, Job)>>>,
    /// Wakes the pacer early: a retry was scheduled, or the first slot went idle.
    pacer_wake: Notify,
    stats: RefCell<IntervalStats>,
    in_flight: [Cell<u64>; 2],
    /// Of `in_flight`, how many by attempt number (so a run cut short still counts every
    /// delivery's attempts).
    in_flight_attempts: RefCell<[[u64; ATTEMPT_SLOTS]; 2]>,
    open_conns: Cell<u64>,
    /// Most connections open at once since the last report.
    peak_conns: Cell<u64>,
    done: Cell<bool>,
    stopping: Cell<bool>,
    rng: RefCell<SplitMix64>,
    /// Closed loop (`shape = "max"`): slots make their own deliveries until this instant.
    max_end: Option<u64>,
    max_seq: Cell<u64>,
    worker: u64,
    workers: u64,
    subscribers: u64,
}

impl Local {
    pub(super) fn new(plan: &WorkerPlan) -> Self {
        let spec = plan.spec.clone();
        Self {
            wall: plan.wall,
            warmup_end: plan.start_mono + plan.warmup_ns,
            ready: RefCell::new(VecDeque::with_capacity(1024)),
            retry_ready: RefCell::new(VecDeque::with_capacity(64)),
            ready_notify: Notify::new(),
            idle_slots: Cell::new(0),
            pacer_now: Cell::new(plan.start_mono),
            retries: RefCell::new(BinaryHeap::with_capacity(256)),
            pacer_wake: Notify::new(),
            stats: RefCell::new(IntervalStats::default()),
            in_flight: [Cell::new(0), Cell::new(0)],
            in_flight_attempts: RefCell::new([[0; ATTEMPT_SLOTS]; 2]),
            open_conns: Cell::new(0),
            peak_conns: Cell::new(0),
            done: Cell::new(false),
            stopping: Cell::new(false),
            max_end: matches!(plan.schedule.shape, Shape::Max)
                .then_some(plan.start_mono + plan.schedule.total_ns),
            max_seq: Cell::new(0),
            worker: plan.worker,
            workers: plan.workers,
            subscribers: plan.schedule.subscribers,
            rng: RefCell::new(SplitMix64::new(
                spec.seed ^ plan.worker.wrapping_mul(0x5851_F42D),
            )),
            spec,
        }
    }

    /// Slots with nothing to do, as the pacer sees them (it wakes sooner when one is idle).
    pub(super) fn set_idle_slots(&self, n: usize) {
        self.idle_slots.set(n);
    }

    /// Counts a delivery as out (by phase and by the attempt it is on, so a run cut short
    /// still counts every delivery's attempts) until [`land`](Self::land).
    pub(super) fn take_off(&self, job: &Job) -> Flight {
        let phase = self.phase(job);
        let slot = (job.attempt as usize + 1).min(ATTEMPT_SLOTS - 1);
        self.in_flight[phase].set(self.in_flight[phase].get() + 1);
        self.in_flight_attempts.borrow_mut()[phase][slot] += 1;
        Flight { phase, slot }
    }

    pub(super) fn land(&self, flight: Flight) {
        let Flight { phase, slot } = flight;
        self.in_flight[phase].set(self.in_flight[phase].get() - 1);
        self.in_flight_attempts.borrow_mut()[phase][slot] -= 1;
    }

    /// A connection was opened (for the open and peak counts).
    pub(super) fn opened(&self) {
        let open = self.open_conns.get() + 1;
        self.open_conns.set(open);
        self.peak_conns.set(self.peak_conns.get().max(open));
    }

    pub(super) fn closed(&self) {
        self.open_conns.set(self.open_conns.get() - 1);
    }

    /// The next delivery a free slot should make: a due retry, then the oldest queued first
    /// attempt that may still start, then (closed loop) a new one of its own.
    pub(super) fn take_job(&self) -> Option<Job> {
        if let Some(job) = self.retry_ready.borrow_mut().pop_front() {
            return Some(job);
        }
        if let Some(job) = take_fresh(self, self.pacer_now.get()) {
            return Some(job);
        }
        let end = self.max_end?;
        let now = mono_ns();
        if now >= end || self.stopping.get() {
            return None;
        }
        let seq = self.max_seq.get();
        self.max_seq.set(seq + 1);
        let index = seq * self.workers + self.worker;
        let job = Job {
            intended: now,
            index,
            subscriber: index % self.subscribers,
            attempt: 0,
        };
        self.bump(self.phase(&job), Counter::Offered, 1);
        Some(job)
    }

    /// When the earliest waiting retry is due.
    pub(super) fn next_retry_due(&self) -> Option<u64> {
        self.retries.borrow().peek().map(|Reverse((due, _))| *due)
    }

    /// This interval's records.
    pub(super) fn stats_mut(&self) -> std::cell::RefMut<'_, IntervalStats> {
        self.stats.borrow_mut()
    }

    pub(super) fn phase(&self, job: &Job) -> usize {
        if job.intended < self.warmup_end {
            WARMUP
        } else {
            MEASURED
        }
    }

    fn bump(&self, phase: usize, c: Counter, by: u64) {
        self.stats.borrow_mut().phases[phase].bump(c, by);
    }
}

/// Runs one worker on its own thread until its share of the schedule is done (or stopped).
/// Plaintext deliveries run on the worker's own epoll loop ([`super::plain`]); TLS ones on a
/// tokio runtime (rustls through tokio-rustls).
pub fn spawn_worker(plan: WorkerPlan) -> std::io::Result<std::thread::JoinHandle<()>> {
    if plan.spec.tls.is_none() {
        return super::plain::spawn_worker(plan);
    }
    crate::local::spawn_local_thread(format!("webhook-{}", plan.worker), move || {
        worker_main(plan)
    })
}

async fn worker_main(plan: WorkerPlan) {
    let local = Rc::new(Local::new(&plan));
    for _ in 0..local.spec.slots_per_worker {
        tokio::task::spawn_local(slot(local.clone()));
    }
    pacer(&local, &plan).await;
}

async fn pacer(local: &Rc<Local>, plan: &WorkerPlan) {
    let mut timer = PreciseTimer::new().expect("timerfd");
    let mut pacer = Pacer::new(plan);
    loop {
        let (pushed, next) = pacer.step(local, plan, mono_ns());
        let wake = pushed.min(local.idle_slots.get());
        local.idle_slots.set(local.idle_slots.get() - wake);
        for _ in 0..wake {
            local.ready_notify.notify_one();
        }
        let Some(next) = next else { break };
        tokio::select! {
            r = timer.sleep_until(next) => r.expect("timerfd wait"),
            _ = local.pacer_wake.notified() => {}
        }
    }
    local.ready_notify.notify_waiters();
    pacer.finish(local, plan);
}

async fn next_job(local: &Local) -> Option<Job> {
    loop {
        if let Some(job) = local.take_job() {
            return Some(job);
        }
        if local.done.get() {
            return None;
        }
        if local.idle_slots.get() == 0 {
            // The pacer may be on its busy tick: from now on a due delivery has a taker.
            local.pacer_wake.notify_one();
        }
        local.idle_slots.set(local.idle_slots.get() + 1);
        local.ready_notify.notified().await;
    }
}

async fn slot(local: Rc<Local>) {
    let spec = local.spec.clone();
    let mut link = Link::default();
    let mut payload = Payload::new(spec.payload_bytes, spec.run_id);
    let mut request = Vec::with_capacity(spec.payload_bytes + 1024);
    let mut timer = Box::pin(tokio::time::sleep(Duration::from_nanos(spec.timeout_ns)));
    while let Some(job) = next_job(&local).await {
        let flight = local.take_off(&job);
        attempt(
            &local,
            &mut link,
            &mut payload,
            &mut request,
            &mut timer,
            job,
            flight.phase,
        )
        .await;
        local.land(flight);
    }
    link.close(&local);
}

pub(super) fn build_request(
    spec: &DeliverySpec,
    wall: &WallMap,
    payload: &mut Payload,
    out: &mut Vec<u8>,
    job: &Job,
    phase: usize,
    send_ns: u64,
) {
    let mut num = itoa::Buffer::new();
    payload.fill(
        job.index,
        wall.to_real_ns(job.intended) / 1_000,
        job.subscriber,
    );
    let body = payload.body();
    out.clear();
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(spec.url.path_prefix.as_bytes());
    if let Some(suffix) = &spec.url.path_suffix {
        out.extend_from_slice(num.format(job.subscriber).as_bytes());
        out.extend_from_slice(suffix.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(spec.host_header.as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: pushbench/");
    out.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
    out.extend_from_slice(num.format(body.len()).as_bytes());
    if spec.connection == ConnectionMode::Fresh {
        out.extend_from_slice(b"\r\nConnection: close");
    }
    for h in &spec.headers {
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.prefix.as_bytes());
        if let Some(suffix) = &h.value.suffix {
            out.extend_from_slice(num.format(job.subscriber).as_bytes());
            out.extend_from_slice(suffix.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\nx-pushbench-t: ");
    out.extend_from_slice(num.format(wall.to_real_ns(job.intended) / 1_000).as_bytes());
    out.push(b',');
    let send_real = wall.to_real_ns(send_ns);
    out.extend_from_slice(num.format(send_real / 1_000).as_bytes());
    out.extend_from_slice(if phase == WARMUP {
        b",0\r\n"
    } else {
        b",1\r\n"
    });
    // Each attempt is signed afresh: a new timestamp, the same id.
    spec.key
        .write_headers(out, payload.id(), send_real / 1_000_000_000, body);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// A slot's connection, and the read buffer of its last one, kept for the next.
#[derive(Default)]
struct Link {
    conn: Option<Conn>,
    spare_buf: Option<Box<[u8]>>,
}

impl Link {
    fn close(&mut self, local: &Local) {
        if let Some(c) = self.conn.take() {
            local.closed();
            self.spare_buf = Some(c.into_buf());
        }
    }
}

async fn exchange(
    local: &Local,
    link: &mut Link,
    request: &[u8],
    phase: usize,
) -> Result<Response, ErrorKind> {
    if link.conn.is_none() {
        let buf = link.spare_buf.take();
        let started = match &local.spec.tls {
            Some(tls) => Conn::start_tls(local.spec.addr, buf, tls),
            None => Conn::start(local.spec.addr, buf),
        };
        match started {
            Ok(c) => {
                local.opened();
                link.conn = Some(c);
            }
            Err(kind) => {
                local.bump(phase, Counter::ConnectErrors, 1);
                return Err(kind);
            }
        }
    }
    let c = link.conn.as_mut().expect("opened above");
    let (out0, in0) = (c.bytes_out, c.bytes_in);
    let result = c.exchange(request).await;
    let mut stats = local.stats.borrow_mut();
    let p = &mut stats.phases[phase];
    p.bump(Counter::BytesOut, c.bytes_out - out0);
    p.bump(Counter::BytesIn, c.bytes_in - in0);
    match result {
        Ok(r) => Ok(r),
        Err(Failure::Connect(kind)) => {
            p.bump(Counter::ConnectErrors, 1);
            Err(kind)
        }
        Err(Failure::Exchange(kind)) => Err(kind),
    }
}

async fn attempt(
    local: &Local,
    link: &mut Link,
    payload: &mut Payload,
    request: &mut Vec<u8>,
    timer: &mut Pin<Box<Sleep>>,
    job: Job,
    phase: usize,
) {
    let Some(send_ns) = begin_attempt(local, &job, phase) else {
        return;
    };
    build_request(
        &local.spec,
        &local.wall,
        payload,
        request,
        &job,
        phase,
        send_ns,
    );
    // Deadlines only move later, so resetting the slot's one timer is an atomic store in tokio
    // (no timer-wheel insert and removal per attempt, as a fresh `timeout` would cost).
    timer
        .as_mut()
        .reset(tokio::time::Instant::now() + Duration::from_nanos(local.spec.timeout_ns));
    let result = tokio::select! {
        biased;
        r = exchange(local, link, request, phase) => r,
        _ = timer.as_mut() => Err(ErrorKind::Timeout),
    };
    let done_ns = mono_ns();
    // Also when the answer then timed out: the connection itself came up.
    let (connected, handshake) = match link.conn.as_mut() {
        Some(c) => (c.take_connected(), c.take_handshake()),
        None => (None, None),
    };
    record_setup(local, phase, connected, handshake);
    let keep = matches!(result, Ok(r) if r.keep_alive)
        && local.spec.connection == ConnectionMode::KeepAlive;
    if !keep {
        link.close(local);
    }
    finish_attempt(local, job, phase, send_ns, done_ns, result);
}

/// Starts an attempt: counts it, and for a first attempt its lag behind the intended time.
/// Returns the send instant, or `None` for an endpoint that answered 410 before (a provider
/// has disabled it: nothing is sent, the delivery is abandoned).
pub(super) fn begin_attempt(local: &Local, job: &Job, phase: usize) -> Option<u64> {
    let mut stats = local.stats.borrow_mut();
    let p = &mut stats.phases[phase];
    if local.spec.gone.is_gone(job.subscriber) {
        p.bump(Counter::Abandoned, 1);
        p.record_attempts(job.attempt, 1);
        return None;
    }
    let send_ns = mono_ns();
    p.bump(Counter::Attempts, 1);
    if job.attempt == 0 {
        p.bump(Counter::Sent, 1);
        record_ns(&mut p.lag, job.intended, send_ns);
        if send_ns.saturating_sub(job.intended) > LATE_NS {
            p.bump(Counter::LateSends, 1);
        }
    }
    Some(send_ns)
}

/// Records a connection that came up during an attempt (from, to in monotonic ns) and its TLS
/// handshake.
pub(super) fn record_setup(
    local: &Local,
    phase: usize,
    connected: Option<(u64, u64)>,
    handshake: Option<crate::webhook::http::Handshake>,
) {
    if connected.is_none() && handshake.is_none() {
        return;
    }
    let mut stats = local.stats.borrow_mut();
    let p = &mut stats.phases[phase];
    if let Some((from, to)) = connected {
        record_ns(&mut p.connect, from, to);
        p.bump(Counter::Connects, 1);
    }
    if let Some(h) = handshake {
        record_ns(&mut p.tls_handshake, h.from, h.to);
        p.bump(
            if h.resumed {
                Counter::TlsResumed
            } else {
                Counter::TlsFull
            },
            1,
        );
    }
}

/// Ends an attempt with what it got: delivered, abandoned (410), retried later or failed.
pub(super) fn finish_attempt(
    local: &Local,
    job: Job,
    phase: usize,
    send_ns: u64,
    done_ns: u64,
    result: Result<Response, ErrorKind>,
) {
    let spec = &*local.spec;
    let attempts = job.attempt + 1;
    let (error, retry_after_s) = match result {
        Ok(r) if (200..300).contains(&r.status) => {
            let mut stats = local.stats.borrow_mut();
            let p = &mut stats.phases[phase];
            p.bump(Counter::Delivered, 1);
            p.record_attempts(attempts, 1);
            record_ns(&mut p.ack, job.intended, done_ns);
            record_ns(&mut p.ack_uncorrected, send_ns, done_ns);
            return;
        }
        Ok(r) if r.status == 410 => (ErrorKind::Status410, None),
        Ok(r) if r.status == 429 => (ErrorKind::Status429, r.retry_after_s),
        Ok(r) if r.status == 503 => (ErrorKind::Status5xx, r.retry_after_s),
        Ok(r) if r.status >= 500 || r.status == 408 => (ErrorKind::Status5xx, None),
        Ok(_) => (ErrorKind::Status4xx, None),
        Err(kind) => (kind, None),
    };
    let mut stats = local.stats.borrow_mut();
    let p = &mut stats.phases[phase];
    p.bump_error(error);
    if error == ErrorKind::Status410 {
        // Gone: never retried, and the endpoint is disabled for every later delivery.
        p.bump(Counter::Abandoned, 1);
        p.record_attempts(attempts, 1);
        if spec.gone.mark(job.subscriber) {
            p.bump(Counter::EndpointsGone, 1);
        }
        return;
    }
    if error.retryable() && attempts < spec.retry.attempts {
        let u = local.rng.borrow_mut().next_f64();
        // Saturating: a huge Retry-After times a large time_scale must not wrap to "now".
        let due = done_ns.saturating_add(retry_wait_ns(&spec.retry, job.attempt, u, retry_after_s));
        p.bump(Counter::Retries, 1);
        drop(stats);
        local.retries.borrow_mut().push(Reverse((
            due,
            Job {
                attempt: job.attempt + 1,
                ..job
            },
        )));
        local.pacer_wake.notify_one();
    } else {
        p.bump(Counter::Failed, 1);
        p.record_attempts(attempts, 1);
    }
}
