//! What arrives at a fleet worker: WebSocket frames or an event stream's body, each event
//! recorded (latency from its intended time, its place in the subscriber's sequence, whether it
//! fell in a fault).

use super::{End, Fleet, JsonFields, ECHO_WINDOW, MAX_MESSAGE};
use crate::clock::{mono_ns, real_ns};
use crate::record::{record_ns, Counter, ErrorKind, MEASURED, WARMUP};
use crate::scenario::WsMode;
use crate::websocket::client::{ClientConn, StreamReader};
use crate::websocket::frame::{self, FrameError, OpCode};
use crate::websocket::proto::Event;
use crate::websocket::sequence::Seen;

impl Fleet {
    /// Handles the complete frames at the start of `buf`; returns bytes used or how it ended.
    pub(super) fn on_frames(
        &self,
        conn: &ClientConn,
        local: usize,
        buf: &mut [u8],
    ) -> Result<usize, End> {
        let mut at = 0;
        loop {
            let h = match frame::parse(&buf[at..], MAX_MESSAGE) {
                Ok(Some(h)) if buf.len() - at >= h.frame_len() => h,
                Ok(_) => return Ok(at),
                Err(FrameError::TooBig | FrameError::Protocol) => return Err(End::Lost),
            };
            let payload = &mut buf[at + h.payload_at..at + h.frame_len()];
            if let Some(mask) = h.mask {
                frame::apply_mask(payload, mask);
            }
            match h.opcode {
                OpCode::Binary | OpCode::Text => self.on_event(local, payload),
                OpCode::Ping => {
                    self.send_frame(conn, OpCode::Pong, payload);
                }
                OpCode::Pong => {
                    let sent = conn.ping_out_ns.replace(0);
                    if sent != 0 && payload.len() == 8 {
                        let now = mono_ns();
                        let phase = if now < self.warmup_end_mono {
                            WARMUP
                        } else {
                            MEASURED
                        };
                        record_ns(&mut self.stats.borrow_mut().phases[phase].rtt, sent, now);
                    }
                }
                OpCode::Close => {
                    let code = frame::close_code(payload);
                    self.send_frame(conn, OpCode::Close, &code.to_be_bytes());
                    let _ = conn.flush();
                    return Err(End::ServerClosed(code));
                }
                OpCode::Continuation => {}
            }
            at += h.frame_len();
        }
    }

    fn on_event(&self, local: usize, payload: &[u8]) {
        if self.plan.mode == WsMode::Idle {
            return;
        }
        if let Some(fields) = &self.plan.fields {
            self.on_external_event(local, payload, fields);
            return;
        }
        let Some(e) = Event::read(payload) else {
            return;
        };
        self.record_event(local, Some(e.intended_us), Some(e.sent_us), Some(e.seq));
        if self.plan.mode == WsMode::Echo {
            let mut in_flight = self.in_flight.borrow_mut();
            let n = &mut in_flight[local];
            *n = n.saturating_sub(1);
            if *n == ECHO_WINDOW / 2 {
                self.echo_room.notify_one();
            }
        }
    }

    /// A message from a server we do not control: its time and sequence come from the JSON
    /// pointers the scenario names (parsing allocates; the built-in server's binary events do not).
    fn on_external_event(&self, local: usize, payload: &[u8], fields: &JsonFields) {
        let value: Option<serde_json::Value> = serde_json::from_slice(payload).ok();
        let number = |pointer: &Option<String>| -> Option<u64> {
            let v = value.as_ref()?.pointer(pointer.as_deref()?)?;
            v.as_u64()
                .or_else(|| v.as_f64().map(|f| f as u64))
                .or_else(|| v.as_str()?.parse().ok())
        };
        let ts = number(&fields.timestamp);
        let seq = number(&fields.sequence);
        self.record_event(local, ts, ts, seq);
    }

    /// Counts one received event: latency from its intended (and sent) time when known, and its
    /// place in the subscriber's sequence when it has one.
    pub(super) fn record_event(
        &self,
        local: usize,
        intended_us: Option<u64>,
        sent_us: Option<u64>,
        seq: Option<u64>,
    ) {
        let now_us = real_ns() / 1000;
        let phase = match intended_us {
            Some(t) if t < self.plan.warmup_end_real_us => WARMUP,
            Some(_) => MEASURED,
            None => self.phase_now(),
        };
        let mut stats = self.stats.borrow_mut();
        if phase == MEASURED {
            stats.last_delivery_mono = mono_ns();
        }
        let p = &mut stats.phases[phase];
        p.bump(Counter::Delivered, 1);
        if let Some(t) = intended_us {
            let latency_us = now_us.saturating_sub(t).max(1);
            p.ack.saturating_record(latency_us);
            if self.in_fault(t) {
                p.backlog.saturating_record(latency_us);
            }
        }
        if let Some(t) = sent_us {
            p.ack_uncorrected
                .saturating_record(now_us.saturating_sub(t).max(1));
        }
        let Some(seq) = seq else { return };
        match self.sequences.borrow_mut().observe(local, seq) {
            Seen::InOrder => {}
            Seen::Gap(missing) => p.bump(Counter::Gaps, missing),
            Seen::Late => p.bump(Counter::Reordered, 1),
        }
    }

    /// Whether an event intended at `t_us` fell in a fault: the server's stall, or while this
    /// worker's connections were down.
    fn in_fault(&self, t_us: u64) -> bool {
        let (from, to) = self.outage_real_us.get();
        let stalled = self
            .plan
            .stall_real_us
            .is_some_and(|(a, b)| (a..b).contains(&t_us));
        stalled || (from != 0 && (from..=to).contains(&t_us))
    }

    pub(super) fn on_readable(&self, conn: &ClientConn, local: usize) -> Result<(), End> {
        if conn.stream.is_some() {
            return conn.wire.read_frames(
                |n| self.bump(self.phase_now(), Counter::BytesIn, n as u64),
                |bytes| {
                    self.on_stream_bytes(conn, local, bytes)
                        .map(|()| bytes.len())
                },
                || End::Lost,
            );
        }
        conn.wire.read_frames(
            |n| self.bump(self.phase_now(), Counter::BytesIn, n as u64),
            |frames| self.on_frames(conn, local, frames),
            || End::Lost,
        )
    }

    /// Part of an event stream's body: unchunked when it is chunked, parsed, each event
    /// recorded. A broken coding or a malformed stream is counted and ends the connection.
    pub(super) fn on_stream_bytes(
        &self,
        conn: &ClientConn,
        local: usize,
        bytes: &[u8],
    ) -> Result<(), End> {
        let Some(reader) = &conn.stream else {
            return Ok(());
        };
        let mut reader = reader.borrow_mut();
        let StreamReader { dechunk, parser } = &mut *reader;
        let mut on_event = |e: crate::sse::parse::Event<'_>| self.on_stream_event(local, e);
        let mut malformed = None;
        let ended = match dechunk {
            Some(d) => {
                let step = d.feed(bytes, |data| {
                    if malformed.is_none() {
                        malformed = parser.feed(data, &mut on_event).err();
                    }
                });
                match step {
                    Ok(step) => matches!(step, crate::chunked::Step::Done { .. }),
                    Err(_) => {
                        self.malformed();
                        return Err(End::Lost);
                    }
                }
            }
            None => {
                malformed = parser.feed(bytes, &mut on_event).err();
                false
            }
        };
        if malformed.is_some() {
            self.malformed();
            return Err(End::Lost);
        }
        if ended {
            return Err(End::Ended);
        }
        Ok(())
    }

    /// A stream the server broke: counted as a bad response.
    pub(super) fn malformed(&self) {
        self.stats.borrow_mut().phases[self.phase_now()].bump_error(ErrorKind::BadResponse);
    }

    /// One event of a stream: the built-in server's layout, or an external server's JSON.
    fn on_stream_event(&self, local: usize, e: crate::sse::parse::Event<'_>) {
        if self.plan.mode == WsMode::Idle {
            return;
        }
        if let Some(fields) = &self.plan.fields {
            self.on_external_event(local, e.data.as_bytes(), fields);
            return;
        }
        if let Some(ev) = crate::sse::event::read(e.data) {
            self.record_event(local, Some(ev.intended_us), Some(ev.sent_us), Some(ev.seq));
        }
    }
}
