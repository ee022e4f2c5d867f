//! Wire layouts the harness shares with the built-in WebSocket server.
//!
//! **Event payload** (binary frames, pushed by the server or echoed back to the client):
//! `seq u64 | intended_us u64 | sent_us u64 | subscriber u32 | padding`, little-endian, times in
//! wall-clock microseconds, padded to `payload_bytes`. Fixed offsets: reading an event costs four
//! loads, no parsing.
//!
//! **Control connection** (harness -> each server process, plain TCP): fixed 33-byte records
//! `tag u8 | subscriber u32 | seq u64 | intended_us u64 | sent_us u64 | len u32` where tag 1
//! publishes an event of `len` bytes to `subscriber`, tag 2 drops connections (`seq` = close code,
//! 0 for an abrupt reset; `len` = per-mille of connections), tag 3 asks for stats, tag 4 holds
//! every push for `seq` microseconds (a stall: the backlog goes out after it), tag 5 tells a
//! process that a subscriber resumed elsewhere (it forgets what it kept for it). The server
//! answers with 5-byte records `tag u8 | subscriber u32`: 1 = now holds the subscriber, 2 = no
//! longer holds it; 13-byte records `4 | subscriber u32 | from u64`: now holds the subscriber,
//! which resumed and wants its events from sequence `from` on (an event stream's
//! `Last-Event-ID` + 1, a long poll's cursor + 1); and tag 3 with `len u32` and a JSON
//! [`ServerStats`](crate::record::results::ServerStats). With several server processes behind
//! one port, the hold/release records tell the publisher which process to send each
//! subscriber's events to.

/// Smallest event payload.
pub use crate::envelope::WS_EVENT_BYTES as EVENT_HEADER;

/// The fields of an event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Per-subscriber sequence number, from 0.
    pub seq: u64,
    /// Intended time, wall-clock microseconds.
    pub intended_us: u64,
    /// Actual send time (publisher or echo client), wall-clock microseconds.
    pub sent_us: u64,
    /// Subscriber.
    pub subscriber: u32,
}

impl Event {
    /// Writes the header into the first 28 bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.seq.to_le_bytes());
        out[8..16].copy_from_slice(&self.intended_us.to_le_bytes());
        out[16..24].copy_from_slice(&self.sent_us.to_le_bytes());
        out[24..28].copy_from_slice(&self.subscriber.to_le_bytes());
    }

    /// Reads an event payload; `None` if it is too short to be one.
    pub fn read(payload: &[u8]) -> Option<Self> {
        if payload.len() < EVENT_HEADER {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(payload[i..i + 8].try_into().expect("8 bytes"));
        Some(Self {
            seq: u64_at(0),
            intended_us: u64_at(8),
            sent_us: u64_at(16),
            subscriber: u32::from_le_bytes(payload[24..28].try_into().expect("4 bytes")),
        })
    }
}

/// Kernel buffer for each side of a control connection (the kernel doubles it): room for a
/// few thousand publish records, about tens of milliseconds at 100k events/s.
pub const CONTROL_BUFFER_BYTES: usize = 64 * 1024;

/// Control record size (harness -> server).
pub const CONTROL_RECORD: usize = 33;

/// Control record tags.
pub mod tag {
    /// Publish an event.
    pub const PUBLISH: u8 = 1;
    /// Drop connections.
    pub const DROP: u8 = 2;
    /// Ask for (or answer with) stats.
    pub const STATS: u8 = 3;
    /// Hold pushes for a while.
    pub const STALL: u8 = 4;
    /// The subscriber resumed at another process: forget it here.
    pub const FORGET: u8 = 5;
    /// Server -> harness: subscriber connected here.
    pub const HOLD: u8 = 1;
    /// Server -> harness: subscriber gone from here.
    pub const RELEASE: u8 = 2;
    /// Server -> harness: subscriber resumed here, wants its events from a sequence on.
    pub const RESUME: u8 = 4;
}

/// One harness -> server control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// What to do.
    pub tag: u8,
    /// Subscriber (publish).
    pub subscriber: u32,
    /// Sequence (publish) or close code (drop).
    pub seq: u64,
    /// Intended time (publish).
    pub intended_us: u64,
    /// Send time (publish).
    pub sent_us: u64,
    /// Payload bytes (publish) or per-mille of connections (drop).
    pub len: u32,
}

impl Control {
    /// Appends the record.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(self.tag);
        out.extend_from_slice(&self.subscriber.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.intended_us.to_le_bytes());
        out.extend_from_slice(&self.sent_us.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
    }

    /// Reads one record from the first 33 bytes.
    pub fn read(b: &[u8]) -> Self {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Self {
            tag: b[0],
            subscriber: u32::from_le_bytes(b[1..5].try_into().expect("4 bytes")),
            seq: u64_at(5),
            intended_us: u64_at(13),
            sent_us: u64_at(21),
            len: u32::from_le_bytes(b[29..33].try_into().expect("4 bytes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_round_trip() {
        let e = Event {
            seq: 7,
            intended_us: 1_795_000_000_000_001,
            sent_us: 1_795_000_000_000_002,
            subscriber: 42,
        };
        let mut buf = [0u8; 64];
        e.write(&mut buf);
        assert_eq!(Event::read(&buf), Some(e));
        assert_eq!(Event::read(&buf[..27]), None);
        let c = Control {
            tag: tag::PUBLISH,
            subscriber: 9,
            seq: 3,
            intended_us: 4,
            sent_us: 5,
            len: 512,
        };
        let mut out = Vec::new();
        c.write(&mut out);
        assert_eq!(out.len(), CONTROL_RECORD);
        assert_eq!(Control::read(&out), c);
    }
}
