//! Per-subscriber sequence bookkeeping: where each event falls in its subscriber's sequence
//! (next in order, after a gap, or late: reordered or a duplicate). Pure, so every push model
//! counts gaps and reorders the same way.

/// Where one event fell in its subscriber's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The next one expected.
    InOrder,
    /// Later than expected: this many events before it never arrived (yet).
    Gap(u64),
    /// Earlier than expected: it arrived after a later one, or twice.
    Late,
}

/// "No event seen yet": the first one sets the start (a server we do not control may start
/// anywhere).
const UNSET: u64 = u64::MAX;

/// The next expected sequence number of each subscriber.
#[derive(Debug, Clone)]
pub struct Sequences {
    expected: Vec<u64>,
}

impl Sequences {
    /// `subscribers` sequences that start at 0 (the built-in server numbers from 0), or, with
    /// `start_anywhere`, at whatever the first event says.
    pub fn new(subscribers: usize, start_anywhere: bool) -> Self {
        Self {
            expected: vec![if start_anywhere { UNSET } else { 0 }; subscribers],
        }
    }

    /// Places event `seq` of subscriber `sub` (an index below `subscribers`).
    pub fn observe(&mut self, sub: usize, seq: u64) -> Seen {
        let exp = &mut self.expected[sub];
        if *exp == UNSET {
            *exp = seq.saturating_add(1);
            Seen::InOrder
        } else if seq == *exp {
            *exp += 1;
            Seen::InOrder
        } else if seq > *exp {
            let missing = seq - *exp;
            *exp = seq.saturating_add(1);
            Seen::Gap(missing)
        } else {
            Seen::Late
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_placed_in_its_subscribers_sequence() {
        use Seen::*;
        // (start anywhere, events of one subscriber, what each is)
        let table: &[(bool, &[u64], &[Seen])] = &[
            (false, &[0, 1, 2], &[InOrder, InOrder, InOrder]),
            (false, &[1, 2], &[Gap(1), InOrder]),
            (false, &[0, 3, 4], &[InOrder, Gap(2), InOrder]),
            // 1 arrives after 2: 2 reported the gap, 1 is late (the gap stays counted).
            (false, &[0, 2, 1, 3], &[InOrder, Gap(1), Late, InOrder]),
            // A duplicate is late too.
            (false, &[0, 1, 1, 2], &[InOrder, InOrder, Late, InOrder]),
            (true, &[41, 42, 44], &[InOrder, InOrder, Gap(1)]),
            (true, &[7, 3], &[InOrder, Late]),
        ];
        for (anywhere, events, want) in table {
            let mut s = Sequences::new(1, *anywhere);
            let got: Vec<Seen> = events.iter().map(|&e| s.observe(0, e)).collect();
            assert_eq!(&got, want, "events {events:?}, start anywhere {anywhere}");
        }
    }

    #[test]
    fn subscribers_are_counted_apart() {
        let mut s = Sequences::new(2, false);
        assert_eq!(s.observe(0, 0), Seen::InOrder);
        assert_eq!(s.observe(1, 2), Seen::Gap(2));
        assert_eq!(s.observe(0, 1), Seen::InOrder);
        assert_eq!(s.observe(1, 3), Seen::InOrder);
    }
}
