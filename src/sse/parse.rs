//! Incremental `text/event-stream` parsing by the WHATWG HTML standard ("server-sent events",
//! section 9.2.6, interpreting an event stream): lines end with CRLF, LF or CR (a CRLF may be
//! split between reads); a leading BOM is dropped; a blank line dispatches the event; a line
//! starting with `:` is a comment; `field: value` loses one leading space of its value; `data`
//! lines join with LF; `id` sets the last event ID buffer unless it holds NUL (the buffer
//! persists across events), and each dispatch (even of an event without data, which is not
//! delivered) makes it the last event ID; `retry` sets the reconnection time; other fields are
//! ignored; an event not ended by a blank line when the stream ends is discarded. As browsers
//! do (Chromium seeds a new stream's parser with it), a reconnected stream starts from the last
//! event ID, where the standard's text starts each stream's buffer empty.
//!
//! Departures, for a load generator that must not hide a broken server: invalid UTF-8 (the
//! standard decodes it with replacement characters), a `retry` that is not a number (the
//! standard ignores it) and a line longer than the limit are errors, so the caller counts the
//! stream as malformed and reconnects.
//!
//! Nothing is allocated per event: a stream keeps its own buffers (the event's data and type,
//! the last id, a line split between reads), made when its first field arrives, and reuses
//! them; bytes are copied out of the read buffer only into those.

/// Why a stream is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// A line longer than the limit (the stream would grow without bound).
    LineTooLong,
    /// A line that is not UTF-8.
    InvalidUtf8,
    /// A `retry` field whose value is not ASCII digits.
    BadRetry,
}

impl SseError {
    /// How the results name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::LineTooLong => "line_too_long",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::BadRetry => "bad_retry",
        }
    }
}

/// One dispatched event, borrowing the stream's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    /// `event:` (empty: the default type, `message`).
    pub event_type: &'a str,
    /// The `data:` lines joined with LF.
    pub data: &'a str,
    /// The last event ID (set by this event or an earlier one).
    pub id: &'a str,
}

/// A stream's buffers, made when its first field (or split line) arrives: a held stream that
/// has seen only comments (heartbeats) keeps none.
#[derive(Debug, Default)]
struct Buffers {
    /// A line not ended yet (only while one is split between reads).
    line: Vec<u8>,
    /// The event's data so far.
    data: Vec<u8>,
    /// The event's type so far.
    event_type: Vec<u8>,
    /// The last event ID buffer (`id:` lines of the event being received).
    id_buffer: Vec<u8>,
    /// The last event ID: the buffer as of the last dispatch (sent as `Last-Event-ID`).
    last_id: Vec<u8>,
}

/// A stream's parsing state.
#[derive(Debug, Default)]
pub struct Parser {
    /// Made on first need (boxed: an idle stream carries a pointer, not five vectors).
    b: Option<Box<Buffers>>,
    /// The server's `retry:`, in milliseconds.
    retry_ms: Option<u64>,
    /// The last byte fed was a CR: an LF right after it ends nothing more.
    after_cr: bool,
    /// Past the first line (its BOM, if any, is gone).
    started: bool,
    /// Limit on one line.
    max_line: usize,
}

/// Buffers a stream keeps for good are handed back above this size.
const KEEP_BYTES: usize = 64 * 1024;

impl Parser {
    /// A parser for a new stream; lines longer than `max_line` bytes are errors.
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            ..Self::default()
        }
    }

    /// The last event id seen (what a reconnect sends as `Last-Event-ID`; empty: none).
    pub fn last_id(&self) -> &str {
        // Only UTF-8 ever gets in.
        self.b
            .as_ref()
            .map_or("", |b| std::str::from_utf8(&b.last_id).unwrap_or_default())
    }

    fn bufs(&mut self) -> &mut Buffers {
        self.b.get_or_insert_with(Box::default)
    }

    /// The server's reconnection time, when it sent one.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry_ms
    }

    /// Starts over on a new connection: what was half-received is dropped (an `id:` of an
    /// event that never ended included); the last event ID and the reconnection time are kept,
    /// as the event source keeps them.
    pub fn reconnected(&mut self) {
        if let Some(b) = &mut self.b {
            b.line.clear();
            b.data.clear();
            b.event_type.clear();
            b.id_buffer.clear();
            b.id_buffer.extend_from_slice(&b.last_id);
        }
        self.after_cr = false;
        self.started = false;
        self.trim();
    }

    /// Whether the stream ended inside an event (data or a type received, no blank line yet),
    /// or inside a line.
    pub fn pending(&self) -> bool {
        self.b
            .as_ref()
            .is_some_and(|b| !b.line.is_empty() || !b.data.is_empty() || !b.event_type.is_empty())
    }

    /// Parses `bytes` (the next part of the stream), calling `on_event` for each event it
    /// completes. After an error the stream must be dropped.
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        mut on_event: impl FnMut(Event<'_>),
    ) -> Result<(), SseError> {
        if self.after_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.after_cr = false;
        while !bytes.is_empty() {
            let Some(end) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') else {
                let max = self.max_line;
                let line = &mut self.bufs().line;
                if line.len() + bytes.len() > max {
                    return Err(SseError::LineTooLong);
                }
                line.extend_from_slice(bytes);
                return Ok(());
            };
            let rest = &bytes[end + 1..];
            let next = if bytes[end] == b'\r' {
                match rest.first() {
                    Some(b'\n') => &rest[1..],
                    Some(_) => rest,
                    None => {
                        self.after_cr = true;
                        rest
                    }
                }
            } else {
                rest
            };
            let kept = self.b.as_ref().map_or(0, |b| b.line.len());
            if kept + end > self.max_line {
                return Err(SseError::LineTooLong);
            }
            if kept == 0 {
                self.line_done(&bytes[..end], &mut on_event)?;
            } else {
                let mut line = std::mem::take(&mut self.bufs().line);
                line.extend_from_slice(&bytes[..end]);
                let done = self.line_done(&line, &mut on_event);
                line.clear();
                self.bufs().line = line;
                done?;
            }
            bytes = next;
        }
        self.trim();
        Ok(())
    }

    fn line_done(
        &mut self,
        mut line: &[u8],
        on_event: &mut impl FnMut(Event<'_>),
    ) -> Result<(), SseError> {
        if !self.started {
            self.started = true;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(on_event);
            return Ok(());
        }
        if std::str::from_utf8(line).is_err() {
            return Err(SseError::InvalidUtf8);
        }
        if line[0] == b':' {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                let data = &mut self.bufs().data;
                data.extend_from_slice(value);
                data.push(b'\n');
            }
            b"event" => {
                let t = &mut self.bufs().event_type;
                t.clear();
                t.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                let id = &mut self.bufs().id_buffer;
                id.clear();
                id.extend_from_slice(value);
            }
            b"retry" => {
                if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
                    return Err(SseError::BadRetry);
                }
                // Digits only: it parses, unless absurdly long.
                self.retry_ms = Some(
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(u64::MAX),
                );
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(Event<'_>)) {
        // No buffers: nothing but comments so far, so nothing to dispatch.
        let Some(b) = &mut self.b else { return };
        if b.last_id != b.id_buffer {
            b.last_id.clear();
            b.last_id.extend_from_slice(&b.id_buffer);
        }
        if b.data.is_empty() {
            b.event_type.clear();
            return;
        }
        let data = &b.data[..b.data.len() - 1];
        // Lines were checked: all of it is UTF-8.
        on_event(Event {
            event_type: std::str::from_utf8(&b.event_type).unwrap_or_default(),
            data: std::str::from_utf8(data).unwrap_or_default(),
            id: std::str::from_utf8(&b.last_id).unwrap_or_default(),
        });
        b.data.clear();
        b.event_type.clear();
    }

    /// Hands back buffers a burst made large.
    fn trim(&mut self) {
        let Some(bufs) = &mut self.b else { return };
        for b in [&mut bufs.line, &mut bufs.data, &mut bufs.event_type] {
            if b.capacity() > KEEP_BYTES && b.is_empty() {
                *b = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (type, data, id) of every event in `stream` fed in one piece, and whether it ended
    /// inside an event.
    fn events(stream: &[u8]) -> (Vec<(String, String, String)>, bool) {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        p.feed(stream, |e| {
            out.push((e.event_type.into(), e.data.into(), e.id.into()))
        })
        .unwrap();
        (out, p.pending())
    }

    fn ev(t: &str, d: &str, id: &str) -> (String, String, String) {
        (t.into(), d.into(), id.into())
    }

    #[test]
    fn the_standards_examples_parse_as_it_says() {
        // WHATWG HTML 9.2.6, the examples after "interpreting an event stream".
        let (e, _) = events(b"data: YHOO\ndata: +2\ndata: 10\n\n");
        assert_eq!(e, [ev("", "YHOO\n+2\n10", "")]);
        let (e, _) = events(
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n",
        );
        assert_eq!(
            e,
            [
                ev("", "first event", "1"),
                ev("", "second event", ""),
                ev("", " third event", "")
            ]
        );
        let (e, pending) = events(b"data\n\ndata\ndata\n\ndata:");
        assert_eq!(e, [ev("", "", ""), ev("", "\n", "")]);
        assert!(pending, "the last one never ended: discarded");
        let (e, _) = events(b"data:test\n\ndata: test\n\n");
        assert_eq!(e, [ev("", "test", ""), ev("", "test", "")]);
    }

    #[test]
    fn types_ids_and_unknown_fields() {
        let (e, pending) = events(
            b"event: tick\ndata: 1\nid: a\nfoo: bar\n\nevent: only-type\n\ndata: 2\n\nid: b\n\ndata: 3\nid: x\0y\n\n",
        );
        assert_eq!(
            e,
            [
                ev("tick", "1", "a"),
                // No data: not dispatched, and its type does not leak into the next.
                ev("", "2", "a"),
                // An id with NUL is ignored; the id set by the data-less event stays.
                ev("", "3", "b"),
            ]
        );
        assert!(!pending);
    }

    #[test]
    fn every_line_ending_and_every_split_gives_the_same_events() {
        let lf = b"\xEF\xBB\xBFevent: e\ndata: one\ndata: two\nid: 7\n\n: comment\ndata: three\n\n";
        let want = events(lf).0;
        assert_eq!(want, [ev("e", "one\ntwo", "7"), ev("", "three", "7")]);
        let crlf: Vec<u8> = lf
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect();
        let cr: Vec<u8> = lf
            .iter()
            .map(|&b| if b == b'\n' { b'\r' } else { b })
            .collect();
        for stream in [&lf[..], &crlf, &cr] {
            assert_eq!(
                events(stream).0,
                want,
                "{:?}",
                String::from_utf8_lossy(stream)
            );
            // Split at every position, and fed a byte at a time.
            for at in 0..stream.len() {
                let mut p = Parser::new(1 << 20);
                let mut got = Vec::new();
                let mut push =
                    |e: Event<'_>| got.push((e.event_type.into(), e.data.into(), e.id.into()));
                p.feed(&stream[..at], &mut push).unwrap();
                p.feed(&stream[at..], &mut push).unwrap();
                assert_eq!(got, want, "split at {at}");
            }
            let mut p = Parser::new(1 << 20);
            let mut got = Vec::new();
            for b in stream.iter() {
                p.feed(std::slice::from_ref(b), |e| {
                    got.push((e.event_type.into(), e.data.into(), e.id.into()))
                })
                .unwrap();
            }
            assert_eq!(got, want, "a byte at a time");
        }
    }

    #[test]
    fn retry_sets_the_reconnection_time_and_a_bad_one_is_an_error() {
        let mut p = Parser::new(1024);
        p.feed(b"retry: 2500\n\n", |_| {}).unwrap();
        assert_eq!(p.retry_ms(), Some(2500));
        let mut p = Parser::new(1024);
        assert_eq!(p.feed(b"retry: 1s\n", |_| {}), Err(SseError::BadRetry));
    }

    #[test]
    fn a_line_past_the_limit_and_invalid_utf8_are_errors() {
        let mut p = Parser::new(1024);
        let long = vec![b'x'; 600];
        p.feed(b"data: ", |_| {}).unwrap();
        p.feed(&long, |_| {}).unwrap();
        assert_eq!(p.feed(&long, |_| {}), Err(SseError::LineTooLong));
        let mut p = Parser::new(1024);
        let mut whole = b"data: ".to_vec();
        whole.extend_from_slice(&[b'x'; 2000]);
        whole.push(b'\n');
        assert_eq!(p.feed(&whole, |_| {}), Err(SseError::LineTooLong));
        let mut p = Parser::new(1024);
        assert_eq!(
            p.feed(b"data: \xC3\x28\n\n", |_| {}),
            Err(SseError::InvalidUtf8)
        );
    }

    #[test]
    fn the_last_id_survives_a_reconnect_and_half_an_event_does_not() {
        let mut p = Parser::new(1024);
        p.feed(b"id: 41\ndata: a\n\nid: 42\ndata: half", |_| {})
            .unwrap();
        assert!(p.pending());
        p.reconnected();
        assert!(!p.pending());
        assert_eq!(p.last_id(), "41", "42 came with an event that never ended");
        let mut got = Vec::new();
        p.feed(b"data: b\n\n", |e| got.push(e.data.to_string()))
            .unwrap();
        assert_eq!(got, ["b"]);
    }
}
