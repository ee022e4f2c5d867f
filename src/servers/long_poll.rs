//! Long polling at the built-in push server: `GET /poll/{subscriber}?cursor=N&timeout_ms=T`
//! answers with the subscriber's events after sequence N as soon as there is one, or with
//! none when `T` runs out. Events published between polls wait in the subscriber's mailbox;
//! an event leaves it only when a later poll's cursor says the client has it, so an answer
//! lost with its connection is sent again.
//!
//! The answer is JSON, `{"cursor":N,"events":[{"seq":..,"intended_us":..,"sent_us":..,
//! "subscriber":..,"data":"xx.."}]}`, each event padded with `data` to the run's event size;
//! `cursor` is the last sequence in the answer (the one the next poll sends).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

use tokio::sync::Notify;

use crate::websocket::proto::Event;

/// Events one answer carries at most (the rest go with the next poll).
pub const MAX_EVENTS_PER_ANSWER: usize = 1000;

/// Subscribers one process keeps a mailbox for at most (a poll for one more is refused 503).
pub const MAX_MAILBOXES: usize = 1 << 18;

/// Longest hold a client may ask for.
pub const MAX_HOLD_MS: u64 = 120_000;

/// Why a waiting poll is answered without events, or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// The subscriber was forgotten here (it resumed at another process, or a drop fault
    /// cleared the mailbox): answer empty, the next poll resumes.
    Forgotten,
    /// An abrupt drop: cut the connection.
    Cut,
}

/// One subscriber's long-poll state at this process.
pub struct PollSlot {
    /// Distinguishes this slot from a later one of the same subscriber.
    pub id: u64,
    /// Events the client has not confirmed yet, in sequence order, with their sizes.
    mailbox: RefCell<VecDeque<(Event, u32)>>,
    /// Bytes of the events in the mailbox.
    bytes: Cell<usize>,
    /// Wakes the waiting poll.
    pub wake: Notify,
    /// The poll that may answer: a newer poll of the same subscriber takes over.
    pub current_poll: Cell<u64>,
    /// Set when the slot was dropped or forgotten.
    pub gone: Cell<Option<Gone>>,
}

impl PollSlot {
    /// An empty mailbox.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            mailbox: RefCell::new(VecDeque::new()),
            bytes: Cell::new(0),
            wake: Notify::new(),
            current_poll: Cell::new(0),
            gone: Cell::new(None),
        }
    }

    /// Drops the events the client confirmed (sequence `cursor` and before).
    pub fn confirm(&self, cursor: u64) {
        let mut mailbox = self.mailbox.borrow_mut();
        while mailbox.front().is_some_and(|(e, _)| e.seq <= cursor) {
            let (_, len) = mailbox.pop_front().expect("front exists");
            self.bytes.set(self.bytes.get() - len as usize);
        }
    }

    /// Adds an event (unless `max_bytes` wait already, or the client has it: a replayed copy
    /// of an event still here); false if it was not kept.
    pub fn push(&self, e: Event, len: u32, max_bytes: usize) -> bool {
        let mut mailbox = self.mailbox.borrow_mut();
        if mailbox.back().is_some_and(|(last, _)| last.seq >= e.seq) {
            return true;
        }
        if self.bytes.get() + len as usize > max_bytes {
            return false;
        }
        mailbox.push_back((e, len));
        self.bytes.set(self.bytes.get() + len as usize);
        drop(mailbox);
        self.wake.notify_one();
        true
    }

    /// Whether events wait.
    pub fn has_events(&self) -> bool {
        !self.mailbox.borrow().is_empty()
    }

    /// The answer with the waiting events (up to [`MAX_EVENTS_PER_ANSWER`]); `cursor` is the
    /// poll's own when none wait. Returns the body and how many events it carries.
    pub fn answer(&self, cursor: Option<u64>) -> (Vec<u8>, usize) {
        let mailbox = self.mailbox.borrow();
        let n = mailbox.len().min(MAX_EVENTS_PER_ANSWER);
        let bytes: usize = mailbox
            .iter()
            .take(n)
            .map(|(_, len)| *len as usize + 96)
            .sum();
        let mut out = Vec::with_capacity(64 + bytes);
        let last = n.checked_sub(1).map(|i| mailbox[i].0.seq).or(cursor);
        out.extend_from_slice(b"{\"cursor\":");
        match last {
            Some(c) => out.extend_from_slice(itoa::Buffer::new().format(c).as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"events\":[");
        for (i, (e, len)) in mailbox.iter().take(n).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_event(&mut out, e, *len as usize);
        }
        out.extend_from_slice(b"]}");
        (out, n)
    }
}

/// Appends one event object, padded with `data` so the object is about `payload_bytes` long.
pub fn write_event(out: &mut Vec<u8>, e: &Event, payload_bytes: usize) {
    let start = out.len();
    for (key, v) in [
        ("{\"seq\":", e.seq),
        (",\"intended_us\":", e.intended_us),
        (",\"sent_us\":", e.sent_us),
        (",\"subscriber\":", u64::from(e.subscriber)),
    ] {
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
    out.extend_from_slice(b",\"data\":\"");
    let used = out.len() - start + 2;
    out.extend(std::iter::repeat_n(
        b'x',
        payload_bytes.saturating_sub(used),
    ));
    out.extend_from_slice(b"\"}");
}

/// The `cursor` and `timeout_ms` of a poll's query (`cursor` empty or absent: none yet).
pub fn query(q: Option<&str>) -> (Option<u64>, Option<u64>) {
    let (mut cursor, mut timeout) = (None, None);
    for kv in q.unwrap_or("").split('&') {
        if let Some(v) = kv.strip_prefix("cursor=") {
            cursor = v.parse().ok();
        } else if let Some(v) = kv.strip_prefix("timeout_ms=") {
            timeout = v.parse().ok();
        }
    }
    (cursor, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> Event {
        Event {
            seq,
            intended_us: 1_000 + seq,
            sent_us: 2_000 + seq,
            subscriber: 3,
        }
    }

    #[test]
    fn events_stay_until_a_cursor_confirms_them() {
        let slot = PollSlot::new(1);
        for seq in 0..3 {
            assert!(slot.push(event(seq), 100, 1 << 20));
        }
        // A replayed copy of one already here is not kept twice.
        assert!(slot.push(event(2), 100, 1 << 20));
        let (body, n) = slot.answer(None);
        assert_eq!(n, 3);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["cursor"], 2);
        assert_eq!(v["events"][1]["seq"], 1);
        assert_eq!(v["events"][1]["intended_us"], 1_001);
        // Each event object is padded to the event size.
        let one = serde_json::to_string(&v["events"][0]).unwrap();
        assert_eq!(one.len(), 100);
        // The answer was lost: the same poll again gets the same events.
        assert_eq!(slot.answer(None).1, 3);
        slot.confirm(1);
        let (body, n) = slot.answer(Some(1));
        assert_eq!(n, 1);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["events"][0]["seq"], 2);
        slot.confirm(2);
        assert!(!slot.has_events());
        let (body, n) = slot.answer(Some(2));
        assert_eq!(
            (n, body.as_slice()),
            (0, &b"{\"cursor\":2,\"events\":[]}"[..])
        );
    }

    #[test]
    fn a_full_mailbox_refuses_more() {
        let slot = PollSlot::new(1);
        assert!(slot.push(event(0), 600, 1000));
        assert!(!slot.push(event(1), 600, 1000));
        slot.confirm(0);
        assert!(slot.push(event(1), 600, 1000));
    }

    #[test]
    fn queries_give_cursor_and_timeout() {
        assert_eq!(
            query(Some("cursor=41&timeout_ms=20000")),
            (Some(41), Some(20000))
        );
        assert_eq!(query(Some("cursor=&timeout_ms=5")), (None, Some(5)));
        assert_eq!(query(None), (None, None));
    }
}
