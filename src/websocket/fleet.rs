//! A fleet worker: holds its share of the subscribers' connections (`subscriber % workers ==
//! worker`), ramps them up at the connect rate, keeps them alive with pings, reconnects with
//! backoff, sends echo traffic on schedule, and records what arrives. One thread, one
//! current-thread runtime, `Rc` state: nothing is locked or shared with other workers.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::Interest;

use crate::backoff::backoff_ns;
use crate::clock::{mono_ns, real_ns};
use crate::record::ErrorKind;
use crate::record::{record_ns, Counter, IntervalStats, Reporter, WorkerReport, MEASURED, WARMUP};
use crate::scenario::PushProtocol;
use crate::scenario::WsMode;
use crate::schedule::SplitMix64;
use crate::sse::parse::Parser;
use crate::tls::session::ClientSession;
use crate::websocket::client::{
    handshake, tcp_connect, ClientConn, ClientWire, Framing, StreamReader,
};
use crate::websocket::frame::{self, OpCode};
use crate::websocket::sequence::Sequences;

mod echo;
mod poll;
mod receive;
mod spec;

pub use poll::PollReader;
pub use spec::{FleetSpec, FleetTls, JsonFields};

/// Largest message accepted from the server.
const MAX_MESSAGE: usize = 16 << 20;
/// Unsent bytes one connection may queue.
const MAX_PENDING: usize = 1 << 20;
/// Longest event-stream line accepted (a longer one is a malformed stream).
const MAX_SSE_LINE: usize = 512 * 1024;
/// How long closing connections get to finish the close handshake.
const CLOSE_GRACE_NS: u64 = 2_000_000_000;

/// The counter a close code is tallied under.
fn close_counter(code: u16) -> Counter {
    match code {
        1000 => Counter::Close1000,
        1001 => Counter::Close1001,
        1008 => Counter::Close1008,
        1009 => Counter::Close1009,
        1011 => Counter::Close1011,
        _ => Counter::CloseOther,
    }
}

struct Fleet {
    plan: FleetSpec,
    stop: Arc<AtomicBool>,
    tx: Reporter,
    conns: RefCell<Vec<Option<Rc<ClientConn>>>>,
    sequences: RefCell<Sequences>,
    echo_seq: RefCell<Vec<u64>>,
    stats: RefCell<IntervalStats>,
    open: Cell<u64>,
    ramp_reported: Cell<bool>,
    closing: Cell<bool>,
    rng: RefCell<SplitMix64>,
    out: RefCell<Vec<u8>>,
    /// `host:port` for the upgrade request, formatted once.
    host_header: String,
    /// The client side of TLS, shared by this worker's connections (and their session cache).
    tls: Option<crate::tls::ClientTls>,
    /// The warm-up boundary on the monotonic clock.
    warmup_end_mono: u64,
    /// Connects in flight.
    connecting: tokio::sync::Semaphore,
    /// Closed-loop echo: messages sent and not yet echoed, per connection.
    in_flight: RefCell<Vec<u32>>,
    /// Closed-loop echo: wakes the sender when a connection has room again.
    echo_room: tokio::sync::Notify,
    /// The latest outage of this worker's connections, wall-clock us: from the first loss
    /// after the ramp until all were back (`u64::MAX` while some are still down; 0 = none).
    outage_real_us: Cell<(u64, u64)>,
}

/// Connects one worker has in flight at most.
const MAX_CONNECTING: usize = 256;

/// Closed-loop echo keeps this many messages in flight per connection (pipelined, as tcpkali
/// streams), refilling when half have come back.
const ECHO_WINDOW: u32 = 64;

/// Why a session ended.
enum End {
    /// The server sent a close frame with this code.
    ServerClosed(u16),
    /// We closed (end of run).
    WeClosed,
    /// The server finished the event stream's response.
    Ended,
    /// Lost without a close frame, or declared dead.
    Lost,
    /// A long poll was answered and its connection is done with (`connection = "fresh"`, or
    /// the server closes after answering): poll again at once, on a new one.
    Answered,
    /// The server refused or garbled an answer (counted as an error where it was seen): back
    /// off, then ask again.
    Refused,
}

impl Fleet {
    fn local(&self, subscriber: u64) -> usize {
        (subscriber / self.plan.stride().1) as usize
    }

    /// Phase of something happening now: one monotonic clock read (it runs per frame).
    fn phase_now(&self) -> usize {
        if mono_ns() < self.warmup_end_mono {
            WARMUP
        } else {
            MEASURED
        }
    }

    fn bump(&self, phase: usize, c: Counter, by: u64) {
        self.stats.borrow_mut().phases[phase].bump(c, by);
    }

    fn mask(&self) -> [u8; 4] {
        (self.rng.borrow_mut().next_u64() as u32).to_le_bytes()
    }

    /// Sends a masked frame; false when the connection cannot take it.
    fn send_frame(&self, conn: &ClientConn, opcode: OpCode, payload: &[u8]) -> bool {
        let mut out = self.out.borrow_mut();
        out.clear();
        frame::encode(&mut out, opcode, payload, Some(self.mask()));
        match conn.send(&out, MAX_PENDING) {
            Some(n) => {
                self.bump(self.phase_now(), Counter::BytesOut, n as u64);
                true
            }
            None => false,
        }
    }

    /// A held connection was lost (not closed by us): the first loss since all were up starts
    /// an outage, which lasts until every connection is back.
    fn on_loss(&self) {
        if self.ramp_reported.get()
            && !self.closing.get()
            && self.outage_real_us.get().1 != u64::MAX
        {
            self.outage_real_us.set((real_ns() / 1000, u64::MAX));
            let mut stats = self.stats.borrow_mut();
            if stats.first_loss_mono == 0 {
                stats.first_loss_mono = mono_ns();
            }
        }
    }

    /// A connection came up; if it was the last one missing, the outage is over.
    fn on_up(&self) {
        if self.open.get() as usize != self.conns.borrow().len() {
            return;
        }
        let (from, to) = self.outage_real_us.get();
        if to == u64::MAX {
            self.outage_real_us.set((from, real_ns() / 1000));
            self.stats.borrow_mut().recovered_mono = mono_ns();
        }
    }

    /// Serves one connection until it ends. The task waits on socket readiness alone: queued
    /// writes, close frames and dead sockets are driven from the fleet's tick (it flushes queues,
    /// sends close frames and shuts dead sockets down), so an idle connection's task keeps one
    /// readiness future and nothing else, and fits tokio's next smaller task size.
    async fn session(&self, conn: &ClientConn, local: usize) -> End {
        if conn.stream.is_some() && !conn.wire.partial.borrow().is_empty() {
            let early = std::mem::take(&mut *conn.wire.partial.borrow_mut());
            if let Err(end) = self.on_stream_bytes(conn, local, &early) {
                return end;
            }
        }
        if !conn.wire.partial.borrow().is_empty() {
            let mut early = std::mem::take(&mut *conn.wire.partial.borrow_mut());
            match self.on_frames(conn, local, &mut early) {
                Ok(used) => *conn.wire.partial.borrow_mut() = early[used..].to_vec(),
                Err(end) => return end,
            }
        }
        loop {
            let interest = if conn.wire.pending.borrow().is_empty() {
                Interest::READABLE
            } else {
                Interest::READABLE | Interest::WRITABLE
            };
            let Ok(ready) = conn.wire.stream.ready(interest).await else {
                return End::Lost;
            };
            if ready.is_writable() && conn.flush().is_err() {
                return End::Lost;
            }
            if ready.is_readable() || ready.is_read_closed() {
                if let Err(end) = self.on_readable(conn, local) {
                    return match end {
                        // The answer to our own close at the end of the run (an event stream:
                        // the socket we shut down).
                        End::ServerClosed(_) | End::Ended if conn.close_with.get().is_some() => {
                            End::WeClosed
                        }
                        End::Lost if conn.close_with.get() == Some(1000) => End::WeClosed,
                        end => end,
                    };
                }
            }
        }
    }

    /// Connects, speaks TLS when asked, and upgrades; returns the connection and how long its
    /// TLS handshake took (timed apart: the connect time excludes it).
    async fn connect(
        &self,
        subscriber: u64,
        stream_after: Option<&str>,
    ) -> Result<(ClientWire, u64, Framing), ErrorKind> {
        let poll = self.plan.protocol == PushProtocol::LongPoll;
        let ips = &self.plan.source_ips;
        let source = (!ips.is_empty()).then(|| ips[self.local(subscriber) % ips.len()]);
        let stream = tcp_connect(self.plan.addr, source)
            .await
            .map_err(|e| ErrorKind::from_io(&e))?;
        let mut tls_ns = 0;
        let session = match &self.tls {
            Some(tls) => {
                let t1 = mono_ns();
                let done =
                    ClientSession::connect(&stream, tls.config.clone(), tls.server_name.clone())
                        .await
                        .map_err(|e| ErrorKind::from_handshake(&e))?;
                let t2 = mono_ns();
                tls_ns = t2 - t1;
                let mut stats = self.stats.borrow_mut();
                let p = &mut stats.phases[self.phase_now()];
                record_ns(&mut p.tls_handshake, t1, t2);
                p.bump(
                    if done.resumed {
                        Counter::TlsResumed
                    } else {
                        Counter::TlsFull
                    },
                    1,
                );
                Some(done.session)
            }
            None => None,
        };
        let wire = ClientWire::new(stream, session);
        if poll {
            // The polls themselves are the requests.
            return Ok((wire, tls_ns, Framing::Raw));
        }
        let key = {
            let mut rng = self.rng.borrow_mut();
            let mut k = [0u8; 16];
            k[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            k[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            k
        };
        let framing = handshake(
            &wire,
            &self.host_header,
            &self.plan.url,
            &self.plan.headers,
            subscriber,
            key,
            stream_after,
        )
        .await?;
        Ok((wire, tls_ns, framing))
    }

    async fn subscriber_task(self: Rc<Self>, subscriber: u64) {
        let local = self.local(subscriber);
        let mut failures = 0u32;
        let mut ever_connected = false;
        // An event stream's parser between connections: the last event id (sent as
        // Last-Event-ID) and the server's retry survive a reconnect. Boxed: a WebSocket
        // connection's task does not carry its size.
        let sse = self.plan.protocol == PushProtocol::Sse;
        let mut resume: Option<Box<Parser>> = sse.then(|| Box::new(Parser::new(MAX_SSE_LINE)));
        // A long poll's cursor (the last sequence seen) and answer buffer, kept between
        // connections; a fresh connection per poll is no reconnect.
        let long_poll = self.plan.protocol == PushProtocol::LongPoll;
        let cursor = Cell::new(None);
        let mut poll_reader: Option<Box<RefCell<PollReader>>> =
            long_poll.then(|| Box::new(RefCell::new(PollReader::default())));
        let mut repoll = false;
        while !self.closing.get() {
            // A bounded number of connects in flight per worker: a ramp the machine cannot keep
            // up with queues here instead of piling up half-open handshakes (whose freed state
            // would fragment the heap between the held connections).
            let permit = self.connecting.acquire().await.expect("never closed");
            let t0 = mono_ns();
            if ever_connected && !repoll {
                self.bump(self.phase_now(), Counter::ReconnectAttempts, 1);
            }
            // Boxed: the connect state (with its timer) is the largest, and it is only needed
            // while connecting; inline it would sit in every held connection's task for good.
            let after = resume.as_deref().map(Parser::last_id);
            let connected = Box::pin(tokio::time::timeout(
                Duration::from_secs(10),
                self.connect(subscriber, after),
            ))
            .await
            .unwrap_or(Err(ErrorKind::Timeout));
            drop(permit);
            let phase = self.phase_now();
            match connected {
                Ok((wire, tls_ns, framing)) => {
                    {
                        let mut stats = self.stats.borrow_mut();
                        let p = &mut stats.phases[phase];
                        record_ns(&mut p.connect, t0 + tls_ns, mono_ns());
                        p.bump(Counter::Connects, 1);
                        if ever_connected && !repoll {
                            p.bump(Counter::Reconnects, 1);
                        }
                    }
                    ever_connected = true;
                    failures = 0;
                    let reader = resume.take().map(|mut parser| {
                        parser.reconnected();
                        StreamReader {
                            dechunk: (framing == Framing::Chunked)
                                .then(crate::chunked::Dechunker::new),
                            parser: *parser,
                        }
                    });
                    // Built in a block: a local `ClientConn` would keep its storage in the task
                    // (across every await after it) even once moved into the `Rc`.
                    let conn = Rc::new({
                        let mut conn =
                            ClientConn::new(wire, mono_ns() + self.plan.ping_interval_ns, reader);
                        conn.poll = poll_reader.take();
                        conn
                    });
                    if let Some(template) = &self.plan.subscribe {
                        let text = template.replace("{subscriber}", &subscriber.to_string());
                        self.send_frame(&conn, OpCode::Text, text.as_bytes());
                    }
                    // Messages in flight on a lost connection are gone (and show as gaps).
                    self.in_flight.borrow_mut()[local] = 0;
                    self.conns.borrow_mut()[local] = Some(conn.clone());
                    self.open.set(self.open.get() + 1);
                    self.on_up();
                    if !self.ramp_reported.get()
                        && self.open.get() as usize == self.conns.borrow().len()
                    {
                        self.ramp_reported.set(true);
                        let mut stats = self.stats.borrow_mut();
                        stats.ramps_done += 1;
                        stats.ramp_done_mono = mono_ns();
                    }
                    let end = if long_poll {
                        // Boxed: its timer would otherwise make every held connection's task
                        // (WebSocket and event streams too) larger for good.
                        Box::pin(self.poll_session(&conn, local, subscriber, &cursor)).await
                    } else {
                        self.session(&conn, local).await
                    };
                    if let Some(reader) = &conn.stream {
                        let parser = std::mem::take(&mut reader.borrow_mut().parser);
                        // Cut inside an event (no blank line ended it): the event is lost, and
                        // the stream was malformed.
                        if parser.pending() && !matches!(end, End::WeClosed) {
                            self.malformed();
                        }
                        resume = Some(Box::new(parser));
                    }
                    self.conns.borrow_mut()[local] = None;
                    self.open.set(self.open.get() - 1);
                    let phase = self.phase_now();
                    if let Some(reader) = &conn.poll {
                        // The answer buffer goes on to the next connection (a fresh one per
                        // poll reuses it), read from its start.
                        let kept = std::mem::take(&mut *reader.borrow_mut()).reset();
                        poll_reader = Some(Box::new(RefCell::new(kept)));
                    }
                    repoll = matches!(end, End::Answered);
                    if !matches!(end, End::WeClosed | End::Answered) {
                        self.on_loss();
                    }
                    match end {
                        End::ServerClosed(code) => {
                            let mut stats = self.stats.borrow_mut();
                            let p = &mut stats.phases[phase];
                            p.bump(Counter::ServerCloses, 1);
                            p.bump(close_counter(code), 1);
                        }
                        End::Lost if conn.close_with.get() == Some(0) => {
                            self.bump(phase, Counter::PongsMissed, 1)
                        }
                        End::Lost => self.bump(phase, Counter::Disconnects, 1),
                        End::Ended => self.bump(phase, Counter::ServerCloses, 1),
                        End::WeClosed | End::Answered | End::Refused => {}
                    }
                }
                Err(kind) => {
                    repoll = false;
                    let mut stats = self.stats.borrow_mut();
                    stats.phases[phase].bump(Counter::ConnectErrors, 1);
                    stats.phases[phase].bump_error(kind);
                }
            }
            if self.closing.get() {
                break;
            }
            if repoll {
                continue;
            }
            let u = self.rng.borrow_mut().next_f64();
            let mut wait = backoff_ns(&self.plan.reconnect.as_retry(), failures, u);
            // An event stream's `retry:` is the server's floor: never sooner than it asked.
            if let Some(ms) = resume.as_deref().and_then(Parser::retry_ms) {
                wait = wait.max(ms.saturating_mul(1_000_000));
            }
            failures = failures.saturating_add(1);
            tokio::time::sleep(Duration::from_nanos(wait)).await;
        }
    }

    /// Opens this worker's connections at its share of the connect rate, and drives them.
    ///
    /// The connections are futures in one `FuturesUnordered` owned by this task, not tokio
    /// tasks: a tokio task cell is 128-byte aligned with a header and trailer, which cost each
    /// held connection about 130 bytes more. Only woken connections are polled.
    async fn ramp(self: Rc<Self>) {
        let (first, step) = self.plan.stride();
        let mine: Vec<u64> = (first..self.plan.subscribers)
            .step_by(step as usize)
            .collect();
        let mut held = FuturesUnordered::new();
        let mut started = 0usize;
        while started < mine.len() && !self.closing.get() {
            let elapsed_s = mono_ns().saturating_sub(self.plan.ramp_start_mono) as f64 / 1e9;
            let due = ((elapsed_s * self.plan.connect_rate_per_sec) as usize + 1).min(mine.len());
            while started < due {
                held.push(self.clone().subscriber_task(mine[started]));
                started += 1;
            }
            // Drive the connections for a millisecond, then start the next ones.
            let tick = tokio::time::sleep(Duration::from_millis(1));
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut tick => break,
                    Some(()) = held.next() => {}
                }
            }
        }
        while held.next().await.is_some() {}
    }

    fn heartbeat(&self) {
        let now = mono_ns();
        let interval = self.plan.ping_interval_ns;
        let len = self.conns.borrow().len();
        for i in 0..len {
            // One connection at a time: sending may not re-enter `conns`, but no copy is made.
            let Some(conn) = self.conns.borrow()[i].clone() else {
                continue;
            };
            if !conn.wire.pending.borrow().is_empty() {
                // A write its task is not waiting for (it waits to read): push it on.
                let _ = conn.flush();
            }
            // An event stream or a poll has no pings: the server keeps it alive.
            if conn.is_http() {
                continue;
            }
            let out = conn.ping_out_ns.get();
            if out != 0 && now > out + interval {
                // No pong for a whole interval: the connection is dead. Shutting the socket
                // down wakes its task, which ends it and reconnects.
                if conn.close_with.replace(Some(0)).is_none() {
                    let _ = socket2::SockRef::from(&conn.wire.stream)
                        .shutdown(std::net::Shutdown::Both);
                }
            } else if out == 0 && now >= conn.next_ping_ns.get() {
                conn.ping_out_ns.set(now);
                conn.next_ping_ns.set(now + interval);
                self.send_frame(&conn, OpCode::Ping, &now.to_le_bytes());
            }
        }
    }

    fn flush(&self, interval: u64, last: bool) {
        let mut stats = std::mem::take(&mut *self.stats.borrow_mut());
        stats.open_connections = self.open.get();
        self.tx.send(WorkerReport {
            worker: self.plan.worker,
            interval,
            stats,
            last,
            died: false,
        });
    }
}

/// Runs one fleet worker on its own thread until `close_at_mono` (or Ctrl-C).
pub fn spawn_fleet_worker(
    spec: FleetSpec,
    stop: Arc<AtomicBool>,
    tx: Reporter,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    crate::local::spawn_local_thread(format!("ws-fleet-{}", spec.worker), move || {
        run_fleet(spec, stop, tx)
    })
}

/// The worker's main loop: ramp, heartbeats, interval hand-overs, closing.
pub async fn run_fleet(plan: FleetSpec, stop: Arc<AtomicBool>, tx: Reporter) {
    let mine = plan.held();
    let seed = plan.seed ^ plan.worker.wrapping_mul(0x9E37_79B9);
    // The harness checked these settings (and probed the server) before starting workers.
    let tls = match &plan.tls {
        Some(t) => match crate::tls::client(&t.settings, &plan.url.host, t.run_ca_pem.as_deref()) {
            Ok(tls) => Some(tls),
            Err(e) => panic!("fleet worker {}: {e}", plan.worker),
        },
        None => None,
    };
    let fleet = Rc::new(Fleet {
        conns: RefCell::new(vec![None; mine]),
        sequences: RefCell::new(Sequences::new(mine, plan.fields.is_some())),
        echo_seq: RefCell::new(vec![0; mine]),
        stats: RefCell::new(IntervalStats::default()),
        open: Cell::new(0),
        ramp_reported: Cell::new(false),
        closing: Cell::new(false),
        rng: RefCell::new(SplitMix64::new(seed)),
        out: RefCell::new(Vec::new()),
        host_header: plan.url.authority(),
        tls,
        warmup_end_mono: plan.wall.to_mono_ns(plan.warmup_end_real_us * 1000),
        connecting: tokio::sync::Semaphore::new(MAX_CONNECTING),
        in_flight: RefCell::new(vec![0; mine]),
        echo_room: tokio::sync::Notify::new(),
        outage_real_us: Cell::new((0, 0)),
        plan,
        stop,
        tx,
    });
    if fleet.plan.report_rss_baseline {
        let rss = crate::record::resources::sample("self").map_or(0, |s| s.rss_bytes);
        fleet.stats.borrow_mut().rss_baseline_bytes = rss;
    }
    tokio::task::spawn_local(fleet.clone().ramp());
    if fleet.plan.mode == WsMode::Echo {
        if matches!(fleet.plan.schedule.shape, crate::schedule::Shape::Max) {
            tokio::task::spawn_local(fleet.clone().echo_closed_loop());
        } else {
            tokio::task::spawn_local(fleet.clone().echo_pacer());
        }
    }
    let plan = &fleet.plan;
    let mut interval = 0u64;
    let mut next_flush = plan.ramp_start_mono + plan.interval_ns;
    let mut close_at = plan.close_at_mono;
    let mut closed_at = None;
    loop {
        let now = mono_ns();
        while now >= next_flush {
            if fleet.plan.report_rss_baseline {
                // A worker process: its RSS is metered, so let it show live memory only.
                crate::record::resources::trim_heap();
            }
            fleet.flush(interval, false);
            interval += 1;
            next_flush += plan.interval_ns;
        }
        if fleet.stop.load(Ordering::Relaxed) {
            close_at = close_at.min(now);
        }
        if now >= close_at && closed_at.is_none() {
            fleet.closing.set(true);
            fleet.stats.borrow_mut().down_at_close =
                (fleet.conns.borrow().len() as u64).saturating_sub(fleet.open.get());
            let conns: Vec<Rc<ClientConn>> =
                fleet.conns.borrow().iter().flatten().cloned().collect();
            for conn in conns {
                conn.close_with.set(Some(1000));
                if conn.is_http() {
                    // An event stream (or a poll) ends when the client goes.
                    let _ = socket2::SockRef::from(&conn.wire.stream)
                        .shutdown(std::net::Shutdown::Both);
                } else {
                    fleet.send_frame(&conn, OpCode::Close, &1000u16.to_be_bytes());
                }
            }
            closed_at = Some(now);
        }
        if let Some(t) = closed_at {
            if fleet.open.get() == 0 || now > t + CLOSE_GRACE_NS + 500_000_000 {
                break;
            }
        } else {
            fleet.heartbeat();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.flush(interval, true);
}
