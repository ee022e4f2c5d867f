//! Echo traffic of a fleet worker: paced on the schedule (open loop), or as fast as the echoes
//! come back with a window of messages in flight per connection (closed loop).

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Fleet, ECHO_WINDOW, MAX_PENDING};
use crate::clock::{mono_ns, PreciseTimer};
use crate::record::{record_ns, Counter, LATE_NS, MEASURED, WARMUP};
use crate::websocket::client::ClientConn;
use crate::websocket::frame::{self, OpCode};
use crate::websocket::proto::{Event, EVENT_HEADER};

impl Fleet {
    /// Echo mode: sends this worker's share of the schedule, each at its intended time.
    pub(super) async fn echo_pacer(self: Rc<Self>) {
        let mut timer = PreciseTimer::new().expect("timerfd");
        let mut payload = vec![0u8; self.plan.payload_bytes.max(EVENT_HEADER)];
        let (first, step) = self.plan.stride();
        let schedule = self.plan.schedule.clone();
        // Frames queued since the last write, per connection: when several events are due at
        // once (high rates, or catching up) each connection gets one write for all of them.
        let mut dirty: Vec<Rc<ClientConn>> = Vec::new();
        for d in schedule
            .deliveries(0, 1)
            .filter(|d| d.subscriber % step == first)
        {
            if self.closing.get() || self.stop.load(Ordering::Relaxed) {
                break;
            }
            let intended = self.plan.events_start_mono + d.intended_ns;
            if mono_ns() < intended {
                self.write_queued(&mut dirty);
                if timer.sleep_until(intended).await.is_err() {
                    break;
                }
            }
            let intended_us = self.plan.wall.to_real_ns(intended) / 1000;
            let phase = if intended_us < self.plan.warmup_end_real_us {
                WARMUP
            } else {
                MEASURED
            };
            self.bump(phase, Counter::Offered, 1);
            let local = self.local(d.subscriber);
            let conn = self.conns.borrow()[local].clone();
            let now = mono_ns();
            let sent = conn.is_some_and(|conn| {
                let seq = {
                    let mut seqs = self.echo_seq.borrow_mut();
                    let s = seqs[local];
                    seqs[local] += 1;
                    s
                };
                Event {
                    seq,
                    intended_us,
                    sent_us: self.plan.wall.to_real_ns(now) / 1000,
                    subscriber: d.subscriber as u32,
                }
                .write(&mut payload);
                let queued = self.queue_frame(&conn, OpCode::Binary, &payload);
                if queued && !conn.queued.replace(true) {
                    dirty.push(conn);
                }
                queued
            });
            let mut stats = self.stats.borrow_mut();
            let p = &mut stats.phases[phase];
            if sent {
                p.bump(Counter::Sent, 1);
                record_ns(&mut p.lag, intended, now);
                if now.saturating_sub(intended) > LATE_NS {
                    p.bump(Counter::LateSends, 1);
                }
            } else {
                // Not connected at its intended time: the event is lost, and says so.
                p.bump(Counter::Failed, 1);
            }
        }
        self.write_queued(&mut dirty);
    }

    /// Echo with `shape = "max"`: every connection keeps [`ECHO_WINDOW`] messages in flight, sent
    /// as one write, and is topped up as echoes return. Peak echo throughput, as tcpkali
    /// measures it; each message is timed from when it was queued (closed loop: nothing to
    /// correct for).
    pub(super) async fn echo_closed_loop(self: Rc<Self>) {
        let mut timer = PreciseTimer::new().expect("timerfd");
        let _ = timer.sleep_until(self.plan.events_start_mono).await;
        let end = self.plan.events_start_mono + self.plan.schedule.total_ns;
        let mut payload = vec![0u8; self.plan.payload_bytes.max(EVENT_HEADER)];
        let mut dirty: Vec<Rc<ClientConn>> = Vec::new();
        while !self.closing.get() && !self.stop.load(Ordering::Relaxed) && mono_ns() < end {
            let len = self.conns.borrow().len();
            for local in 0..len {
                let Some(conn) = self.conns.borrow()[local].clone() else {
                    continue;
                };
                let room = ECHO_WINDOW.saturating_sub(self.in_flight.borrow()[local]);
                if room < ECHO_WINDOW / 2 {
                    continue;
                }
                let now = mono_ns();
                let now_us = self.plan.wall.to_real_ns(now) / 1000;
                let phase = if now_us < self.plan.warmup_end_real_us {
                    WARMUP
                } else {
                    MEASURED
                };
                let (first, step) = self.plan.stride();
                let subscriber = local as u64 * step + first;
                let mut sent = 0;
                for _ in 0..room {
                    let seq = {
                        let mut seqs = self.echo_seq.borrow_mut();
                        seqs[local] += 1;
                        seqs[local] - 1
                    };
                    Event {
                        seq,
                        intended_us: now_us,
                        sent_us: now_us,
                        subscriber: subscriber as u32,
                    }
                    .write(&mut payload);
                    if !self.queue_frame(&conn, OpCode::Binary, &payload) {
                        break;
                    }
                    sent += 1;
                }
                self.in_flight.borrow_mut()[local] += sent;
                let p = &mut self.stats.borrow_mut().phases[phase];
                p.bump(Counter::Offered, u64::from(sent));
                p.bump(Counter::Sent, u64::from(sent));
                if sent > 0 && !conn.queued.replace(true) {
                    dirty.push(conn);
                }
            }
            self.write_queued(&mut dirty);
            // Until some connection has room again (or a reconnect needs filling).
            let _ =
                tokio::time::timeout(Duration::from_millis(10), self.echo_room.notified()).await;
        }
    }

    /// Appends a masked frame to the connection's queue without writing it yet.
    pub(super) fn queue_frame(&self, conn: &ClientConn, opcode: OpCode, payload: &[u8]) -> bool {
        let mut out = self.out.borrow_mut();
        out.clear();
        frame::encode(&mut out, opcode, payload, Some(self.mask()));
        match conn.wire.queue(&out, MAX_PENDING) {
            Some(n) => {
                self.bump(self.phase_now(), Counter::BytesOut, n as u64);
                true
            }
            None => false,
        }
    }

    /// Writes every queued connection once; what the socket does not take is written by the
    /// connection's task when it next wakes, or by the fleet's tick.
    pub(super) fn write_queued(&self, dirty: &mut Vec<Rc<ClientConn>>) {
        for conn in dirty.drain(..) {
            conn.queued.set(false);
            let _ = conn.flush();
        }
    }
}
