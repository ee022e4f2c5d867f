//! The built-in SSE server's events, as text (an event stream carries UTF-8 only):
//!
//! ```text
//! id: <seq>
//! data: <seq> <intended_us> <sent_us> <subscriber> xxxx...
//!
//! ```
//!
//! The `data` value is padded with `x` to `payload_bytes` (at least its numbers and spaces);
//! times are wall-clock microseconds, as in the WebSocket model's binary events. The `id` is the
//! per-subscriber sequence number, so a client that reconnects with `Last-Event-ID` says which
//! event it saw last.

use crate::websocket::proto::Event;

/// Appends the event to `out` as one event-stream event whose data is `payload_bytes` long
/// (or just long enough for its fields). Nothing is allocated beyond `out`'s growth.
pub fn write(out: &mut impl Extend<u8>, e: &Event, payload_bytes: usize) {
    let mut seq = itoa::Buffer::new();
    let seq = seq.format(e.seq).as_bytes();
    let mut intended = itoa::Buffer::new();
    let mut sent = itoa::Buffer::new();
    let mut subscriber = itoa::Buffer::new();
    let fields: [&[u8]; 4] = [
        seq,
        intended.format(e.intended_us).as_bytes(),
        sent.format(e.sent_us).as_bytes(),
        subscriber.format(e.subscriber).as_bytes(),
    ];
    out.extend(*b"id: ");
    out.extend(seq.iter().copied());
    out.extend(*b"\ndata: ");
    let mut len = 0;
    for f in fields {
        out.extend(f.iter().copied());
        out.extend([b' ']);
        len += f.len() + 1;
    }
    out.extend(std::iter::repeat_n(b'x', payload_bytes.saturating_sub(len)));
    out.extend(*b"\n\n");
}

/// Reads an event's `data` as [`write`] lays it out; `None` if it is not one.
pub fn read(data: &str) -> Option<Event> {
    let mut fields = data.splitn(5, ' ');
    let mut next = || fields.next()?.parse::<u64>().ok();
    Some(Event {
        seq: next()?,
        intended_us: next()?,
        sent_us: next()?,
        subscriber: u32::try_from(next()?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sse::parse::Parser;

    #[test]
    fn written_events_parse_back_at_their_size() {
        let e = Event {
            seq: 41,
            intended_us: 1_795_000_000_000_001,
            sent_us: 1_795_000_000_000_002,
            subscriber: 7,
        };
        for payload in [0, 64, 512] {
            let mut out = Vec::new();
            write(&mut out, &e, payload);
            let mut p = Parser::new(1 << 20);
            let mut got = Vec::new();
            p.feed(&out, |ev| {
                got.push((ev.id.to_string(), ev.data.len(), read(ev.data)))
            })
            .unwrap();
            let min = "41 1795000000000001 1795000000000002 7 ".len();
            assert_eq!(got, [("41".to_string(), payload.max(min), Some(e))]);
        }
        assert_eq!(read("hello"), None);
        assert_eq!(read("1 2 3"), None);
    }
}
