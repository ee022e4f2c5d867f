//! The publisher's memory of recent events, for the push models whose clients resume: an event
//! stream reconnecting with `Last-Event-ID`, a long poll carrying its cursor. When a server
//! process reports that a subscriber resumed after sequence N, the controller re-publishes the
//! subscriber's events after N from here, the ones lost with the old connection and the ones
//! published while nobody held the subscriber.
//!
//! One ring of fixed-size entries for all subscribers (memory bounded by the ring, not by run
//! length or subscriber count), each entry linked to the subscriber's previous one, so a resume
//! walks only that subscriber's events. An entry overwritten by newer events ends the walk:
//! events older than the ring are gone, and the client counts them as gaps.

/// One remembered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    subscriber: u32,
    seq: u64,
    intended_us: u64,
    /// Write position of the subscriber's previous entry + 1 (0 = none).
    prev: u64,
}

/// Recent events of every subscriber.
#[derive(Debug)]
pub struct Backlog {
    ring: Vec<Entry>,
    capacity: usize,
    /// Entries written so far (the next write position).
    written: u64,
    /// Write position + 1 of each subscriber's latest entry (0 = none).
    latest: Vec<u64>,
}

impl Backlog {
    /// A backlog of the last `capacity` events of `subscribers` subscribers (at least one).
    pub fn new(subscribers: usize, capacity: usize) -> Self {
        Self {
            ring: Vec::new(),
            capacity: capacity.max(1),
            written: 0,
            latest: vec![0; subscribers],
        }
    }

    /// Remembers event `seq` of `subscriber` (sequences of one subscriber come in order).
    pub fn push(&mut self, subscriber: u32, seq: u64, intended_us: u64) {
        let Some(latest) = self.latest.get_mut(subscriber as usize) else {
            return;
        };
        let entry = Entry {
            subscriber,
            seq,
            intended_us,
            prev: *latest,
        };
        let at = (self.written % self.capacity as u64) as usize;
        if at == self.ring.len() {
            self.ring.push(entry);
        } else {
            self.ring[at] = entry;
        }
        self.written += 1;
        *latest = self.written;
    }

    /// The remembered events of `subscriber` from sequence `from` on, oldest first, into `out`
    /// as `(seq, intended_us)` (cleared first). Returns whether the backlog reached back to
    /// `from` (false: older ones were overwritten, or never remembered).
    pub fn since(&self, subscriber: u32, from: u64, out: &mut Vec<(u64, u64)>) -> bool {
        out.clear();
        let Some(&latest) = self.latest.get(subscriber as usize) else {
            return false;
        };
        let oldest_kept = self.written.saturating_sub(self.capacity as u64);
        let mut pos = latest;
        let mut complete = false;
        while pos > oldest_kept {
            let e = &self.ring[((pos - 1) % self.capacity as u64) as usize];
            debug_assert_eq!(e.subscriber, subscriber);
            if e.seq < from {
                complete = true;
                break;
            }
            out.push((e.seq, e.intended_us));
            if e.seq == from {
                complete = true;
                break;
            }
            pos = e.prev;
        }
        // Nothing before `from` was ever published: complete as well.
        if pos == 0 {
            complete = true;
        }
        out.reverse();
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_gets_exactly_the_subscribers_events_after_its_cursor() {
        let mut b = Backlog::new(3, 100);
        for seq in 0..10 {
            b.push(1, seq, 1000 + seq);
            b.push(2, seq, 2000 + seq);
        }
        let mut out = Vec::new();
        assert!(b.since(1, 7, &mut out));
        assert_eq!(out, [(7, 1007), (8, 1008), (9, 1009)]);
        // Caught up: nothing to send, and nothing missing.
        assert!(b.since(2, 10, &mut out));
        assert!(out.is_empty());
        // From the very start.
        assert!(b.since(2, 0, &mut out));
        assert_eq!(out.len(), 10);
        assert_eq!(out[0], (0, 2000));
        // A subscriber with no events, and one out of range.
        assert!(b.since(0, 0, &mut out));
        assert!(out.is_empty());
        assert!(!b.since(9, 0, &mut out));
    }

    #[test]
    fn events_older_than_the_ring_are_reported_missing() {
        // Room for 4 events: subscriber 0's first six, then two of subscriber 1.
        let mut b = Backlog::new(2, 4);
        for seq in 0..6 {
            b.push(0, seq, seq);
        }
        b.push(1, 0, 100);
        b.push(1, 1, 101);
        let mut out = Vec::new();
        // Only seq 4 and 5 of subscriber 0 are left.
        assert!(!b.since(0, 2, &mut out));
        assert_eq!(out, [(4, 4), (5, 5)]);
        assert!(b.since(0, 4, &mut out));
        assert_eq!(out, [(4, 4), (5, 5)]);
        assert!(b.since(1, 0, &mut out));
        assert_eq!(out, [(0, 100), (1, 101)]);
    }
}
