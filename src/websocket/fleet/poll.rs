//! Long polling from a fleet worker: each subscriber keeps one `GET` outstanding, with the
//! cursor of the last event it saw, and asks again as soon as the answer is read (on the same
//! connection, or on a new one with `connection = "fresh"`). Latency runs from each event's
//! intended time to its answer being read, so the re-poll gap and the batching show in it.
//!
//! The answer is read in place: its head with `httparse`, its body by `Content-Length`,
//! chunked coding or the connection's end, into the connection's own buffer (kept between
//! polls). The built-in server's JSON is walked with serde without building a value (no
//! allocation per event); an external server's is parsed into a `serde_json::Value` and read
//! through the scenario's JSON pointers.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tokio::io::Interest;

use super::{End, Fleet, JsonFields};
use crate::chunked::{Dechunker, Step};
use crate::record::{Counter, ErrorKind};
use crate::scenario::WsMode;
use crate::websocket::client::{write_request_head, ClientConn};

/// Longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest answer body accepted.
const MAX_BODY: usize = 16 << 20;
/// How much longer than the hold the client waits for an answer before it calls the poll lost.
const ANSWER_MARGIN_NS: u64 = 10_000_000_000;

thread_local! {
    /// Request scratch for this thread's polls.
    static REQUEST: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(1024));
}

/// How the body of the answer being read is framed.
#[derive(Debug)]
enum Body {
    /// The head has not arrived whole.
    Head,
    /// This many body bytes still to come.
    Length(usize),
    /// Chunked.
    Chunked(Dechunker),
    /// Until the server closes the connection.
    UntilClose,
}

/// One connection's answer in progress (and its body buffer, reused poll after poll).
#[derive(Debug)]
pub struct PollReader {
    body: Body,
    status: u16,
    keep_alive: bool,
    buf: Vec<u8>,
}

impl Default for PollReader {
    fn default() -> Self {
        Self {
            body: Body::Head,
            status: 0,
            keep_alive: true,
            buf: Vec::new(),
        }
    }
}

impl PollReader {
    /// Takes bytes of the answer; returns how many it used (0 while the head is incomplete:
    /// they are offered again with more) and whether the answer is complete.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, bool), ErrorKind> {
        let mut at = 0;
        if matches!(self.body, Body::Head) {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            let len = match resp.parse(input) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) if input.len() < MAX_HEAD => return Ok((0, false)),
                _ => return Err(ErrorKind::BadResponse),
            };
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| h.value)
            };
            let has_token = |name: &str, token: &[u8]| {
                header(name).is_some_and(|v| {
                    v.split(|&b| b == b',')
                        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
                })
            };
            self.status = resp.code.unwrap_or(0);
            self.keep_alive = resp.version == Some(1) && !has_token("connection", b"close");
            self.body = if has_token("transfer-encoding", b"chunked") {
                Body::Chunked(Dechunker::new())
            } else if let Some(v) = header("content-length") {
                let n = std::str::from_utf8(v)
                    .ok()
                    .and_then(|t| t.trim().parse::<usize>().ok())
                    .filter(|&n| n <= MAX_BODY)
                    .ok_or(ErrorKind::BadResponse)?;
                Body::Length(n)
            } else {
                self.keep_alive = false;
                Body::UntilClose
            };
            self.buf.clear();
            at = len;
        }
        let rest = &input[at..];
        let done = match &mut self.body {
            Body::Head => unreachable!("parsed above"),
            Body::Length(n) => {
                let take = rest.len().min(*n);
                self.buf.extend_from_slice(&rest[..take]);
                *n -= take;
                *n == 0
            }
            Body::Chunked(d) => {
                let buf = &mut self.buf;
                match d.feed(rest, |data| buf.extend_from_slice(data)) {
                    Ok(Step::Done { .. }) => true,
                    Ok(Step::More) => false,
                    Err(_) => return Err(ErrorKind::BadResponse),
                }
            }
            Body::UntilClose => {
                self.buf.extend_from_slice(rest);
                false
            }
        };
        if self.buf.len() > MAX_BODY {
            return Err(ErrorKind::BadResponse);
        }
        Ok((input.len(), done))
    }

    /// Ready for a new connection's first answer (the buffer's room is kept).
    pub fn reset(mut self) -> Self {
        self.body = Body::Head;
        self.buf.clear();
        self
    }

    /// The connection ended: whether that completed an answer framed by the connection's end.
    pub fn ended(&mut self) -> bool {
        matches!(self.body, Body::UntilClose)
    }

    /// Readies for the next answer; returns the status, whether the connection may carry
    /// another poll, and the body.
    fn finish(&mut self) -> (u16, bool, &[u8]) {
        self.body = Body::Head;
        (self.status, self.keep_alive, &self.buf)
    }
}

/// An event of the built-in server's answer.
#[derive(serde::Deserialize)]
struct BuiltinEvent {
    seq: u64,
    intended_us: u64,
    sent_us: u64,
}

/// Walks `{"events":[...], ...}` and hands each built-in event to the callback, building
/// nothing.
struct Events<'f, F>(&'f mut F);

impl<'de, F: FnMut(BuiltinEvent)> Visitor<'de> for Events<'_, F> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with an events array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "events" {
                map.next_value_seed(EventList(&mut *self.0))?;
                found = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

struct EventList<'f, F>(&'f mut F);

impl<'de, F: FnMut(BuiltinEvent)> DeserializeSeed<'de> for EventList<'_, F> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(BuiltinEvent)> Visitor<'de> for EventList<'_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(e) = seq.next_element::<BuiltinEvent>()? {
            (self.0)(e);
        }
        Ok(())
    }
}

/// What an answer's body held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// This many events.
    Events(u64),
    /// Not JSON (or not the built-in server's layout).
    NotJson,
    /// JSON without an array at the events pointer.
    NoEvents,
}

/// Reads the built-in server's answer, calling `on_event(seq, intended_us, sent_us)`.
pub fn parse_builtin(body: &[u8], mut on_event: impl FnMut(u64, u64, u64)) -> Parsed {
    let mut n = 0;
    let mut f = |e: BuiltinEvent| {
        n += 1;
        on_event(e.seq, e.intended_us, e.sent_us);
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde::Deserializer::deserialize_map(&mut de, Events(&mut f)) {
        Ok(true) if de.end().is_ok() => Parsed::Events(n),
        Ok(_) => Parsed::NoEvents,
        Err(_) => Parsed::NotJson,
    }
}

/// Reads an external server's answer through the scenario's pointers, calling
/// `on_event(timestamp_us, seq)` with what each event has of them.
pub fn parse_external(
    body: &[u8],
    events_field: &str,
    fields: &JsonFields,
    mut on_event: impl FnMut(Option<u64>, Option<u64>),
) -> Parsed {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Parsed::NotJson;
    };
    let Some(events) = value.pointer(events_field).and_then(|v| v.as_array()) else {
        return Parsed::NoEvents;
    };
    for e in events {
        let number = |pointer: &Option<String>| -> Option<u64> {
            let v = e.pointer(pointer.as_deref()?)?;
            v.as_u64()
                .or_else(|| v.as_f64().map(|f| f as u64))
                .or_else(|| v.as_str()?.parse().ok())
        };
        on_event(number(&fields.timestamp), number(&fields.sequence));
    }
    Parsed::Events(events.len() as u64)
}

impl Fleet {
    /// Polls on `conn` until it ends: one poll outstanding, the next sent when its answer is
    /// read. `cursor` (the last sequence seen) outlives the connection.
    pub(super) async fn poll_session(
        &self,
        conn: &ClientConn,
        local: usize,
        subscriber: u64,
        cursor: &Cell<Option<u64>>,
    ) -> End {
        let Some(settings) = &self.plan.poll else {
            return End::Lost;
        };
        let end = loop {
            if self.closing.get() {
                break End::WeClosed;
            }
            if !self.send_poll(conn, subscriber, cursor.get(), settings.fresh) {
                break End::Lost;
            }
            let deadline = tokio::time::Instant::now()
                + std::time::Duration::from_nanos(settings.hold_ns + ANSWER_MARGIN_NS);
            let keep_alive = loop {
                let interest = if conn.wire.pending.borrow().is_empty() {
                    Interest::READABLE
                } else {
                    Interest::READABLE | Interest::WRITABLE
                };
                let ready =
                    tokio::time::timeout_at(deadline, conn.wire.stream.ready(interest)).await;
                let ready = match ready {
                    Ok(Ok(ready)) => ready,
                    Ok(Err(_)) => return self.poll_end(conn, End::Lost),
                    Err(_) => {
                        // No answer long past the hold: the poll is lost.
                        self.stats.borrow_mut().phases[self.phase_now()]
                            .bump_error(ErrorKind::Timeout);
                        return self.poll_end(conn, End::Lost);
                    }
                };
                if ready.is_writable() && conn.flush().is_err() {
                    return self.poll_end(conn, End::Lost);
                }
                if ready.is_readable() || ready.is_read_closed() {
                    match self.read_answer(conn, local, cursor) {
                        Ok(Some(keep_alive)) => break keep_alive,
                        Ok(None) => {}
                        Err(end) => return self.poll_end(conn, end),
                    }
                }
            };
            if settings.fresh || !keep_alive {
                break End::Answered;
            }
        };
        self.poll_end(conn, end)
    }

    /// How a poll's connection ended, seen from the run: ours when we are closing.
    fn poll_end(&self, conn: &ClientConn, end: End) -> End {
        if conn.close_with.get().is_some() || self.closing.get() {
            End::WeClosed
        } else {
            end
        }
    }

    /// Writes one poll request; false if the connection cannot take it.
    fn send_poll(
        &self,
        conn: &ClientConn,
        subscriber: u64,
        cursor: Option<u64>,
        fresh: bool,
    ) -> bool {
        let mut digits = itoa::Buffer::new();
        let cursor = cursor.map_or("", |c| digits.format(c));
        let sent = REQUEST.with(|b| {
            let mut b = b.borrow_mut();
            b.clear();
            write_request_head(
                &mut b,
                &self.host_header,
                &self.plan.url,
                &self.plan.headers,
                subscriber,
                Some(cursor),
            );
            b.extend_from_slice(b"\r\nAccept: application/json");
            if fresh {
                b.extend_from_slice(b"\r\nConnection: close");
            }
            b.extend_from_slice(b"\r\n\r\n");
            conn.send(&b, super::MAX_PENDING)
        });
        let phase = self.phase_now();
        match sent {
            Some(n) => {
                let mut stats = self.stats.borrow_mut();
                stats.phases[phase].bump(Counter::Polls, 1);
                stats.phases[phase].bump(Counter::BytesOut, n as u64);
                true
            }
            None => false,
        }
    }

    /// Reads what arrived of the answer; `Some(keep_alive)` once it was read whole and its
    /// events recorded.
    fn read_answer(
        &self,
        conn: &ClientConn,
        local: usize,
        cursor: &Cell<Option<u64>>,
    ) -> Result<Option<bool>, End> {
        let Some(reader) = &conn.poll else {
            return Err(End::Lost);
        };
        let mut complete = false;
        let read = conn.wire.read_frames(
            |n| self.bump(self.phase_now(), Counter::BytesIn, n as u64),
            |bytes| {
                if complete {
                    // Nothing may follow an answer before the next poll.
                    return Ok(bytes.len());
                }
                let (used, done) = reader.borrow_mut().feed(bytes).map_err(|kind| {
                    self.stats.borrow_mut().phases[self.phase_now()].bump_error(kind);
                    End::Refused
                })?;
                complete = done;
                Ok(used)
            },
            || End::Lost,
        );
        match read {
            Err(End::Lost) if !complete && reader.borrow_mut().ended() => complete = true,
            Err(end) if !complete => return Err(end),
            _ => {}
        }
        if !complete {
            return Ok(None);
        }
        let mut reader = reader.borrow_mut();
        let (status, keep_alive, body) = reader.finish();
        if status != 200 {
            let kind = match status {
                401 | 403 => ErrorKind::Auth,
                500..=599 => ErrorKind::Status5xx,
                _ => ErrorKind::Status4xx,
            };
            self.stats.borrow_mut().phases[self.phase_now()].bump_error(kind);
            return Err(End::Refused);
        }
        self.on_answer(local, body, cursor)?;
        Ok(Some(keep_alive && read.is_ok()))
    }

    /// Records the events of an answer's body and moves the cursor past them.
    fn on_answer(&self, local: usize, body: &[u8], cursor: &Cell<Option<u64>>) -> Result<(), End> {
        let idle = self.plan.mode == WsMode::Idle;
        let parsed = match &self.plan.fields {
            Some(fields) => {
                let events_field = self
                    .plan
                    .poll
                    .as_ref()
                    .map_or("/events", |p| &p.events_field);
                parse_external(body, events_field, fields, |ts, seq| {
                    if let Some(s) = seq {
                        cursor.set(Some(cursor.get().map_or(s, |c| c.max(s))));
                    }
                    if !idle {
                        self.record_event(local, ts, ts, seq);
                    }
                })
            }
            None => parse_builtin(body, |seq, intended_us, sent_us| {
                cursor.set(Some(cursor.get().map_or(seq, |c| c.max(seq))));
                if !idle {
                    self.record_event(local, Some(intended_us), Some(sent_us), Some(seq));
                }
            }),
        };
        let phase = self.phase_now();
        match parsed {
            Parsed::Events(0) => self.bump(phase, Counter::EmptyPolls, 1),
            Parsed::Events(_) => self.bump(phase, Counter::Answers, 1),
            Parsed::NotJson => {
                self.stats.borrow_mut().phases[phase].bump_error(ErrorKind::BadResponse);
                return Err(End::Refused);
            }
            Parsed::NoEvents => {
                let mut stats = self.stats.borrow_mut();
                stats.phases[phase].bump_error(ErrorKind::BadResponse);
                stats.phases[phase].bump(Counter::MissingPointer, 1);
                return Err(End::Refused);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_whatever_their_framing_and_however_they_arrive() {
        let body = br#"{"cursor":1,"events":[{"seq":1,"intended_us":5,"sent_us":6,"data":"xx"}]}"#;
        let length = [
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes(),
            body.to_vec(),
        ]
        .concat();
        let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for part in body.chunks(20) {
            chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            chunked.extend_from_slice(part);
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        for whole in [length, chunked] {
            // Byte by byte, as a slow network would hand it over.
            let mut r = PollReader::default();
            let mut pending = Vec::new();
            let mut done = false;
            for &b in &whole {
                pending.push(b);
                let (used, d) = r.feed(&pending).unwrap();
                pending.drain(..used);
                done = d;
            }
            assert!(done);
            let (status, keep_alive, got) = r.finish();
            assert_eq!((status, keep_alive, got), (200, true, &body[..]));
        }
        let mut r = PollReader::default();
        let (_, done) = r
            .feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"events\":[]}")
            .unwrap();
        assert!(!done && r.ended());
        assert_eq!(r.finish(), (200, false, &b"{\"events\":[]}"[..]));
        let mut r = PollReader::default();
        assert_eq!(r.feed(b"NOT HTTP\r\n\r\n"), Err(ErrorKind::BadResponse));
    }

    #[test]
    fn builtin_answers_give_every_event_and_bad_ones_say_why() {
        let mut got = Vec::new();
        let body = br#"{"cursor":8,"events":[{"seq":7,"intended_us":1,"sent_us":2,"subscriber":3,"data":"x"},{"seq":8,"intended_us":4,"sent_us":5,"subscriber":3,"data":"x"}]}"#;
        assert_eq!(
            parse_builtin(body, |s, i, t| got.push((s, i, t))),
            Parsed::Events(2)
        );
        assert_eq!(got, [(7, 1, 2), (8, 4, 5)]);
        assert_eq!(parse_builtin(b"<html>", |_, _, _| {}), Parsed::NotJson);
        assert_eq!(
            parse_builtin(b"{\"items\":[]}", |_, _, _| {}),
            Parsed::NoEvents
        );
        let fields = JsonFields {
            timestamp: Some("/ts".into()),
            sequence: Some("/id".into()),
        };
        let mut got = Vec::new();
        let body = br#"{"data":{"items":[{"ts":10,"id":"4"},{"id":5}]}}"#;
        assert_eq!(
            parse_external(body, "/data/items", &fields, |t, s| got.push((t, s))),
            Parsed::Events(2)
        );
        assert_eq!(got, [(Some(10), Some(4)), (None, Some(5))]);
        assert_eq!(
            parse_external(body, "/events", &fields, |_, _| {}),
            Parsed::NoEvents
        );
    }
}
