//! The harness's side of the built-in server's control connections: publishes the event stream
//! (push mode) to whichever server process holds each subscriber, triggers drop faults, and
//! collects the servers' counters at the end.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use crate::clock::{mono_ns, PreciseTimer, WallMap, MIN_WAKE_GAP_NS};
use crate::record::results::ServerStats;
use crate::record::{
    record_ns, Counter, IntervalStats, Reporter, WorkerReport, LATE_NS, MEASURED, WARMUP,
};
use crate::scenario::{DropFault, Stall};
use crate::schedule::Schedule;
use crate::websocket::backlog::Backlog;
use crate::websocket::proto::{tag, Control, CONTROL_RECORD};

/// Events published per write at most: a control buffer's worth.
const MAX_BATCH: usize = crate::websocket::proto::CONTROL_BUFFER_BYTES / CONTROL_RECORD;

/// A write to a server's control stream that took longer than this waited for the server.
const BLOCKED_NS: u64 = 200_000;

/// What the controller does and when.
pub struct ControllerPlan {
    /// One control address per server process.
    pub controls: Vec<SocketAddr>,
    /// Publish the schedule (push mode).
    pub publish: bool,
    /// The event schedule.
    pub schedule: Arc<Schedule>,
    /// t = 0 of the run (intervals count from here).
    pub ramp_start_mono: u64,
    /// When the schedule starts.
    pub events_start_mono: u64,
    /// Warm-up boundary, wall-clock us.
    pub warmup_end_real_us: u64,
    /// Event size.
    pub payload_bytes: usize,
    /// Monotonic -> wall clock.
    pub wall: WallMap,
    /// Drop fault to trigger.
    pub drop: Option<DropFault>,
    /// Stall fault to trigger (from the start of the event stream).
    pub stall: Option<Stall>,
    /// When to collect the servers' counters and finish.
    pub finish_at_mono: u64,
    /// An event not published this long after its intended time is dropped instead.
    pub max_wait_ns: u64,
    /// Interval length.
    pub interval_ns: u64,
    /// Reporting id (after the fleet workers').
    pub worker_id: u64,
    /// Number of subscribers.
    pub subscribers: u64,
    /// Remember recent events and re-publish them when a client resumes after a sequence (an
    /// event stream's `Last-Event-ID`, a long poll's cursor): events published while nobody
    /// held the subscriber wait here instead of being lost.
    pub replay: bool,
    /// Set on Ctrl-C.
    pub stop: Arc<AtomicBool>,
    /// Where interval records go.
    pub tx: Reporter,
}

/// Runs the controller on its own thread; the result is the servers' summed counters.
pub fn spawn_controller(
    plan: ControllerPlan,
) -> std::io::Result<std::thread::JoinHandle<Result<ServerStats, String>>> {
    crate::local::spawn_local_thread("ws-controller".into(), move || run(plan))
}

/// Which server process holds a subscriber: its index + 1, or 0 for none. Wide enough for every
/// process count a run can have (`processes` is validated up to 256, and a fleet of one process
/// per 16k subscribers reaches 256 at 4M connections).
type Route = u16;

/// Applies a server's HOLD or RELEASE of `sub` to the routing table (other tags and subscribers
/// out of range are ignored). A RELEASE only clears the route if this server still holds it: a
/// reconnect to another server may already have taken it.
fn apply_route(routes: &mut [Route], server: usize, t: u8, sub: u32) {
    let me = Route::try_from(server + 1).expect("server count fits a route (checked at start)");
    if let Some(slot) = routes.get_mut(sub as usize) {
        match t {
            tag::HOLD => *slot = me,
            tag::RELEASE if *slot == me => *slot = 0,
            _ => {}
        }
    }
}

/// Events a resume re-publishes at most from the backlog: the ring holds this many of all
/// subscribers' latest events (32 bytes each, 16 MiB at most).
const BACKLOG_EVENTS: usize = 1 << 19;

/// Length of a server's RESUME record.
const RESUME_RECORD: usize = 13;

struct Shared {
    /// Server process (index + 1) holding each subscriber; 0 = none.
    routes: RefCell<Vec<Route>>,
    replies: RefCell<Vec<Option<ServerStats>>>,
    /// Resumes the servers reported, `(server, subscriber, from seq)`: applied by the publishing
    /// loop, which re-publishes the backlog before any newer event goes to the new route.
    resumes: RefCell<Vec<(usize, u32, u64)>>,
    /// Wakes the publishing loop for a resume.
    wake: tokio::sync::Notify,
}

async fn reader(index: usize, mut read: OwnedReadHalf, shared: Rc<Shared>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0;
    loop {
        match read.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        let mut at = 0;
        while filled - at >= 5 {
            let t = buf[at];
            let sub = u32::from_le_bytes(buf[at + 1..at + 5].try_into().expect("4 bytes"));
            if t == tag::STATS {
                let len = sub as usize;
                if filled - at < 5 + len {
                    break;
                }
                let stats = serde_json::from_slice(&buf[at + 5..at + 5 + len]).unwrap_or_default();
                shared.replies.borrow_mut()[index] = Some(stats);
                at += 5 + len;
                continue;
            }
            if t == tag::RESUME {
                if filled - at < RESUME_RECORD {
                    break;
                }
                let from = u64::from_le_bytes(buf[at + 5..at + 13].try_into().expect("8 bytes"));
                shared.resumes.borrow_mut().push((index, sub, from));
                shared.wake.notify_one();
                at += RESUME_RECORD;
                continue;
            }
            apply_route(&mut shared.routes.borrow_mut(), index, t, sub);
            at += 5;
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
        if filled == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
}

async fn run(plan: ControllerPlan) -> Result<ServerStats, String> {
    if plan.controls.len() >= usize::from(Route::MAX) {
        return Err(format!(
            "{} server processes: the controller routes at most {}",
            plan.controls.len(),
            Route::MAX - 1
        ));
    }
    let shared = Rc::new(Shared {
        routes: RefCell::new(vec![0; plan.subscribers as usize]),
        replies: RefCell::new(vec![None; plan.controls.len()]),
        resumes: RefCell::new(Vec::new()),
        wake: tokio::sync::Notify::new(),
    });
    let mut backlog = plan
        .replay
        .then(|| Backlog::new(plan.subscribers as usize, BACKLOG_EVENTS));
    let mut replay = Vec::new();
    let mut writers = Vec::new();
    for (i, addr) in plan.controls.iter().enumerate() {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("control connection to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        // Kernel buffers autotune to megabytes, seconds of events past capacity: events would
        // wait there, after `max_wait` was checked. Bounded, the wait happens here, where it is
        // seen and dropped in time.
        socket2::SockRef::from(&stream)
            .set_send_buffer_size(crate::websocket::proto::CONTROL_BUFFER_BYTES)
            .map_err(|e| e.to_string())?;
        let (r, w) = stream.into_split();
        tokio::task::spawn_local(reader(i, r, shared.clone()));
        writers.push(w);
    }
    let mut bufs: Vec<Vec<u8>> = vec![Vec::new(); writers.len()];
    let mut seqs = vec![
        0u64;
        if plan.publish {
            plan.subscribers as usize
        } else {
            0
        }
    ];
    let mut stats = IntervalStats::default();
    let mut timer = PreciseTimer::new().map_err(|e| e.to_string())?;
    let schedule = plan.schedule.clone();
    let mut events = schedule.deliveries(0, 1).peekable();
    let mut drop_at = plan.drop.map(|d| (plan.events_start_mono + d.at_ns, d));
    let mut stall_at = plan.stall.map(|s| (plan.events_start_mono + s.at_ns, s));
    let mut interval = 0u64;
    let mut next_flush = plan.ramp_start_mono + plan.interval_ns;
    let mut finish_at = plan.finish_at_mono;
    loop {
        let now = mono_ns();
        while now >= next_flush {
            plan.tx.send(WorkerReport {
                worker: plan.worker_id,
                interval,
                stats: std::mem::take(&mut stats),
                last: false,
                died: false,
            });
            interval += 1;
            next_flush += plan.interval_ns;
        }
        if plan.stop.load(Ordering::Relaxed) {
            finish_at = finish_at.min(now);
        }
        let resumes = std::mem::take(&mut *shared.resumes.borrow_mut());
        for (server, sub, from) in resumes {
            let old = shared
                .routes
                .borrow()
                .get(sub as usize)
                .copied()
                .unwrap_or(0);
            apply_route(&mut shared.routes.borrow_mut(), server, tag::HOLD, sub);
            if old != 0 && usize::from(old) != server + 1 {
                // The process it left keeps nothing for it (a long poll's answered events).
                forget(&mut bufs[usize::from(old) - 1], sub);
            }
            let Some(backlog) = &backlog else { continue };
            backlog.since(sub, from, &mut replay);
            for &(seq, intended_us) in &replay {
                Control {
                    tag: tag::PUBLISH,
                    subscriber: sub,
                    seq,
                    intended_us,
                    sent_us: plan.wall.to_real_ns(now) / 1000,
                    len: plan.payload_bytes as u32,
                }
                .write(&mut bufs[server]);
                let phase = if intended_us < plan.warmup_end_real_us {
                    WARMUP
                } else {
                    MEASURED
                };
                stats.phases[phase].bump(Counter::Replayed, 1);
            }
        }
        let publishing = plan.publish && now < finish_at;
        // At most one buffer's worth per write: a behind publisher writes what the servers can
        // take, then looks at the clock again, so what it sends is never older than max_wait
        // by more than one buffer (and a backlog is dropped here, not queued in a write).
        let mut batch = 0;
        while let Some(d) = events.peek().filter(|_| publishing && batch < MAX_BATCH) {
            let intended = plan.events_start_mono + d.intended_ns;
            if intended > now {
                break;
            }
            let intended_us = plan.wall.to_real_ns(intended) / 1000;
            let phase = if intended_us < plan.warmup_end_real_us {
                WARMUP
            } else {
                MEASURED
            };
            let p = &mut stats.phases[phase];
            p.bump(Counter::Offered, 1);
            if now - intended > plan.max_wait_ns {
                // Too late to matter: counted as never published, and the next ones are newer.
                p.bump(Counter::Unfinished, 1);
                events.next();
                continue;
            }
            let sub = d.subscriber as usize;
            let route = shared.routes.borrow()[sub];
            if route == 0 {
                // Nobody holds this subscriber right now: the event is lost (and shows up as a
                // gap at the client once it is back), unless a resume replays it.
                p.bump(Counter::Dropped, 1);
                if let Some(backlog) = &mut backlog {
                    backlog.push(sub as u32, seqs[sub], intended_us);
                    seqs[sub] += 1;
                }
            } else {
                let seq = seqs[sub];
                seqs[sub] += 1;
                if let Some(backlog) = &mut backlog {
                    backlog.push(sub as u32, seq, intended_us);
                }
                Control {
                    tag: tag::PUBLISH,
                    subscriber: sub as u32,
                    seq,
                    intended_us,
                    sent_us: plan.wall.to_real_ns(now) / 1000,
                    len: plan.payload_bytes as u32,
                }
                .write(&mut bufs[route as usize - 1]);
                p.bump(Counter::Sent, 1);
                batch += 1;
                record_ns(&mut p.lag, intended, now);
                if now - intended > LATE_NS {
                    p.bump(Counter::LateSends, 1);
                }
            }
            events.next();
        }
        if let Some((at, fault)) = drop_at {
            if now >= at {
                for buf in bufs.iter_mut() {
                    Control {
                        tag: tag::DROP,
                        subscriber: 0,
                        seq: u64::from(fault.code),
                        intended_us: 0,
                        sent_us: 0,
                        len: fault.per_mille,
                    }
                    .write(buf);
                }
                drop_at = None;
            }
        }
        if let Some((at, stall)) = stall_at.filter(|(at, _)| now >= *at) {
            // Every process holds its pushes for the window; sent late, the window is lost.
            let left_us = (at + stall.for_ns).saturating_sub(now) / 1000;
            for buf in bufs.iter_mut() {
                Control {
                    tag: tag::STALL,
                    subscriber: 0,
                    seq: left_us,
                    intended_us: 0,
                    sent_us: 0,
                    len: 0,
                }
                .write(buf);
            }
            stall_at = None;
        }
        for (w, buf) in writers.iter_mut().zip(bufs.iter_mut()) {
            if !buf.is_empty() {
                let t0 = mono_ns();
                w.write_all(buf)
                    .await
                    .map_err(|e| format!("control connection lost: {e}"))?;
                buf.clear();
                // A write that had to wait is the server not keeping up with the stream.
                let waited = mono_ns() - t0;
                if waited > BLOCKED_NS {
                    let phase = if plan.wall.to_real_ns(t0) / 1000 < plan.warmup_end_real_us {
                        WARMUP
                    } else {
                        MEASURED
                    };
                    stats.phases[phase].bump(Counter::PublishBlockedNs, waited);
                }
            }
        }
        if now >= finish_at {
            break;
        }
        let mut next = next_flush.min(finish_at);
        if plan.publish {
            if let Some(d) = events.peek() {
                next = next.min(plan.events_start_mono + d.intended_ns);
            }
        }
        if let Some((at, _)) = drop_at {
            next = next.min(at);
        }
        if let Some((at, _)) = stall_at {
            next = next.min(at);
        }
        // Wake at least every 50 ms to notice Ctrl-C, and never at once: events closer together
        // than the gap are published together, so a controller that is behind sends its overdue
        // span in one write instead of spinning through it one wake per event.
        let now = mono_ns();
        next = next.min(now + 50_000_000).max(now + MIN_WAKE_GAP_NS);
        tokio::select! {
            r = timer.sleep_until(next) => r.map_err(|e| e.to_string())?,
            _ = shared.wake.notified() => {}
        }
    }

    // Events whose time came but that were never published (the controller fell behind, or
    // the servers stopped taking its stream) are offered and failed, never left uncounted.
    if plan.publish {
        let now = mono_ns();
        for d in events.take_while(|d| plan.events_start_mono + d.intended_ns <= now) {
            let intended_us = plan.wall.to_real_ns(plan.events_start_mono + d.intended_ns) / 1000;
            let phase = if intended_us < plan.warmup_end_real_us {
                WARMUP
            } else {
                MEASURED
            };
            stats.phases[phase].bump(Counter::Offered, 1);
            stats.phases[phase].bump(Counter::Unfinished, 1);
        }
    }

    // Ask every process for its counters.
    for w in writers.iter_mut() {
        let mut out = Vec::new();
        Control {
            tag: tag::STATS,
            subscriber: 0,
            seq: 0,
            intended_us: 0,
            sent_us: 0,
            len: 0,
        }
        .write(&mut out);
        let _ = w.write_all(&out).await;
    }
    let deadline = mono_ns() + 3_000_000_000;
    while shared.replies.borrow().iter().any(Option::is_none) && mono_ns() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    plan.tx.send(WorkerReport {
        worker: plan.worker_id,
        interval,
        stats,
        last: true,
        died: false,
    });
    let mut total = ServerStats::default();
    for s in shared.replies.borrow().iter().flatten() {
        total.add(s);
    }
    Ok(total)
}

/// Appends a FORGET of `subscriber` to a server's control stream.
fn forget(buf: &mut Vec<u8>, subscriber: u32) {
    Control {
        tag: tag::FORGET,
        subscriber,
        seq: 0,
        intended_us: 0,
        sent_us: 0,
        len: 0,
    }
    .write(buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_every_server_process_past_the_256th() {
        let mut routes = vec![0; 4];
        // The 256th and 300th processes (indexes 255 and 299) hold subscribers 1 and 2.
        apply_route(&mut routes, 255, tag::HOLD, 1);
        apply_route(&mut routes, 299, tag::HOLD, 2);
        assert_eq!(routes, vec![0, 256, 300, 0]);
        // A release from a server that no longer holds the subscriber changes nothing.
        apply_route(&mut routes, 0, tag::RELEASE, 2);
        assert_eq!(routes[2], 300);
        apply_route(&mut routes, 299, tag::RELEASE, 2);
        assert_eq!(routes[2], 0);
        // Out of range is ignored.
        apply_route(&mut routes, 3, tag::HOLD, 99);
        assert_eq!(routes, vec![0, 256, 0, 0]);
    }
}
