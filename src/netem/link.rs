//! One direction of an emulated link, on virtual time (nanoseconds the caller supplies), in
//! the design of Mahimahi's shells: packets are dropped at random (seeded), then wait their turn
//! at a bottleneck of fixed rate behind a bounded queue (tail drop when it is full), then travel
//! for the one-way delay plus jitter. Pure: no clock, no sockets; the TUN pump that will carry
//! real packets through it (issue 15) only asks it when each packet leaves.

use std::collections::VecDeque;

use crate::schedule::SplitMix64;

/// The settings of one direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkSpec {
    /// Fixed one-way delay (half the round trip).
    pub delay_ns: u64,
    /// Each packet's delay varies uniformly within +- this.
    pub jitter_ns: u64,
    /// Fraction of packets dropped, 0..1.
    pub loss: f64,
    /// Bottleneck rate in bits per second; `None` = no bottleneck.
    pub bandwidth_bps: Option<u64>,
    /// Bytes the bottleneck may hold waiting (beyond them, tail drop).
    pub queue_bytes: u64,
    /// Jitter may reorder packets (otherwise a packet never overtakes the one before it).
    pub reorder: bool,
    /// Seed of the loss and jitter draws.
    pub seed: u64,
}

impl LinkSpec {
    /// Whether this direction delays, shapes or drops anything (else it only carries packets
    /// on at once).
    pub fn shapes(&self) -> bool {
        self.delay_ns > 0 || self.jitter_ns > 0 || self.bandwidth_bps.is_some() || self.loss > 0.0
    }
}

impl Default for LinkSpec {
    fn default() -> Self {
        Self {
            delay_ns: 0,
            jitter_ns: 0,
            loss: 0.0,
            bandwidth_bps: None,
            queue_bytes: 64 * 1024,
            reorder: false,
            seed: 1,
        }
    }
}

/// What became of a packet offered to the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Delivered at this virtual time.
    At(u64),
    /// Dropped by the random loss.
    Lost,
    /// Dropped because the bottleneck's queue was full.
    QueueFull,
}

/// Counts of what the link did (the run reports them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounts {
    /// Packets offered.
    pub packets: u64,
    /// Bytes offered.
    pub bytes: u64,
    /// Dropped by the random loss.
    pub lost: u64,
    /// Dropped at the full queue.
    pub queue_drops: u64,
    /// Bytes of the packets that got through (neither lost nor dropped).
    pub carried_bytes: u64,
    /// Time the bottleneck spent sending (its busy share of a run is its utilization).
    pub busy_ns: u64,
}

/// One direction's state.
#[derive(Debug)]
pub struct Link {
    spec: LinkSpec,
    rng: SplitMix64,
    /// When the bottleneck finishes sending what it has accepted.
    busy_until_ns: u64,
    /// The latest delivery time handed out (deliveries never go back in time without reorder).
    last_delivery_ns: u64,
    counts: LinkCounts,
}

impl Link {
    /// A quiet link.
    pub fn new(spec: LinkSpec) -> Self {
        Self {
            rng: SplitMix64::new(spec.seed),
            spec,
            busy_until_ns: 0,
            last_delivery_ns: 0,
            counts: LinkCounts::default(),
        }
    }

    /// What it did so far.
    pub fn counts(&self) -> LinkCounts {
        self.counts
    }

    /// Offers a packet of `len` bytes at `now_ns`; returns when it arrives at the far end, or
    /// why it never will.
    pub fn offer(&mut self, now_ns: u64, len: usize) -> Fate {
        self.counts.packets += 1;
        self.counts.bytes += len as u64;
        if self.spec.loss > 0.0 && self.rng.next_f64() < self.spec.loss {
            self.counts.lost += 1;
            return Fate::Lost;
        }
        let sent_ns = match self.spec.bandwidth_bps {
            Some(bps) => {
                let start = self.busy_until_ns.max(now_ns);
                // Bytes already waiting ahead of this packet at the bottleneck.
                let waiting = (start - now_ns) as u128 * bps as u128 / 8 / 1_000_000_000;
                if waiting + len as u128 > self.spec.queue_bytes as u128 {
                    self.counts.queue_drops += 1;
                    return Fate::QueueFull;
                }
                let on_wire = (len as u128 * 8 * 1_000_000_000).div_ceil(bps.max(1) as u128);
                self.busy_until_ns = start + on_wire as u64;
                self.counts.busy_ns += on_wire as u64;
                self.busy_until_ns
            }
            None => now_ns,
        };
        let jitter = if self.spec.jitter_ns > 0 {
            // Uniform in [-jitter, +jitter], never below zero delay.
            let span = 2 * self.spec.jitter_ns + 1;
            (self.rng.next_u64() % span) as i64 - self.spec.jitter_ns as i64
        } else {
            0
        };
        let delay = (self.spec.delay_ns as i64 + jitter).max(0) as u64;
        let mut at = sent_ns + delay;
        if !self.spec.reorder {
            at = at.max(self.last_delivery_ns);
        }
        self.last_delivery_ns = self.last_delivery_ns.max(at);
        self.counts.carried_bytes += len as u64;
        Fate::At(at)
    }
}

/// Packets on their way, in delivery order: what the pump holds between offering a packet to
/// the link and writing it out at the far end.
#[derive(Debug)]
pub struct InFlight<T> {
    queue: VecDeque<(u64, T)>,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
        }
    }
}

impl<T> InFlight<T> {
    /// Holds `packet` until `at_ns` (in order: a packet due earlier than the last one held, with
    /// reordering allowed, is placed before it).
    pub fn push(&mut self, at_ns: u64, packet: T) {
        let i = self.queue.partition_point(|(t, _)| *t <= at_ns);
        self.queue.insert(i, (at_ns, packet));
    }

    /// The next packet due at or before `now_ns`.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<T> {
        if self.queue.front().is_some_and(|(t, _)| *t <= now_ns) {
            self.queue.pop_front().map(|(_, p)| p)
        } else {
            None
        }
    }

    /// When the next packet is due (for the pump's timer).
    pub fn next_due(&self) -> Option<u64> {
        self.queue.front().map(|(t, _)| *t)
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn delay_alone_shifts_every_packet_by_the_one_way_time() {
        let mut l = Link::new(LinkSpec {
            delay_ns: 20 * MS,
            ..LinkSpec::default()
        });
        for (now, want) in [(0, 20 * MS), (5 * MS, 25 * MS), (5 * MS, 25 * MS)] {
            assert_eq!(l.offer(now, 1500), Fate::At(want));
        }
    }

    #[test]
    fn the_bottleneck_serializes_at_its_rate_and_drops_past_its_queue() {
        // 12 Mbit/s: a 1500-byte packet takes exactly 1 ms on the wire; the queue holds 3000 B.
        let mut l = Link::new(LinkSpec {
            delay_ns: 10 * MS,
            bandwidth_bps: Some(12_000_000),
            queue_bytes: 3000,
            ..LinkSpec::default()
        });
        // (offered at, fate): back to back at t = 0 the second waits its turn (1500 B ahead of
        // it, itself 1500: the queue is full), the third finds no room and is dropped; 1 ms
        // later one packet has left, so the next fits behind the second; once drained, the
        // link is free again.
        let table = [
            (0, Fate::At(11 * MS)),
            (0, Fate::At(12 * MS)),
            (0, Fate::QueueFull),
            (MS, Fate::At(13 * MS)),
            (20 * MS, Fate::At(31 * MS)),
        ];
        for (i, (now, want)) in table.into_iter().enumerate() {
            assert_eq!(l.offer(now, 1500), want, "packet {i}");
        }
        let c = l.counts();
        assert_eq!((c.packets, c.bytes, c.queue_drops, c.lost), (5, 7500, 1, 0));
        // Four packets sent, 1 ms each on the wire.
        assert_eq!(c.busy_ns, 4 * MS);
        assert_eq!(c.carried_bytes, 4 * 1500);
    }

    #[test]
    fn a_long_run_at_the_rate_delivers_the_rate() {
        // Offered at twice 10 Mbit/s for 1 s of virtual time: what gets through is 10 Mbit/s.
        let bps = 10_000_000;
        let mut l = Link::new(LinkSpec {
            bandwidth_bps: Some(bps),
            queue_bytes: 64 * 1024,
            ..LinkSpec::default()
        });
        let (mut delivered, mut last) = (0u64, 0u64);
        let gap = 1500 * 8 * 1_000_000_000 / (2 * bps);
        let mut now = 0;
        while now < 1_000_000_000 {
            if let Fate::At(t) = l.offer(now, 1500) {
                delivered += 1500;
                last = last.max(t);
            }
            now += gap;
        }
        let rate = delivered as f64 * 8.0 / (last as f64 / 1e9);
        assert!((rate / bps as f64 - 1.0).abs() < 0.02, "{rate} bit/s");
        assert!(l.counts().queue_drops > 0);
    }

    #[test]
    fn loss_drops_its_fraction_reproducibly() {
        let spec = LinkSpec {
            loss: 0.02,
            seed: 42,
            ..LinkSpec::default()
        };
        let run = || {
            let mut l = Link::new(spec);
            (0..100_000)
                .map(|i| l.offer(i, 100) == Fate::Lost)
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run(), "same seed, same drops");
        let lost = a.iter().filter(|x| **x).count();
        assert!((1800..2200).contains(&lost), "{lost} of 100000");
    }

    #[test]
    fn jitter_varies_the_delay_without_reordering_unless_asked() {
        for reorder in [false, true] {
            let mut l = Link::new(LinkSpec {
                delay_ns: 20 * MS,
                jitter_ns: 5 * MS,
                reorder,
                seed: 7,
                ..LinkSpec::default()
            });
            let times: Vec<u64> = (0..2000)
                .map(|i| match l.offer(i * 100_000, 100) {
                    Fate::At(t) => t - i * 100_000,
                    other => panic!("{other:?}"),
                })
                .collect();
            let (lo, hi) = (times.iter().min().unwrap(), times.iter().max().unwrap());
            assert!(*lo >= 15 * MS && *hi <= 25 * MS + 200 * MS, "{lo} {hi}");
            let arrivals: Vec<u64> = times
                .iter()
                .enumerate()
                .map(|(i, d)| i as u64 * 100_000 + d)
                .collect();
            let in_order = arrivals.windows(2).all(|w| w[0] <= w[1]);
            assert_eq!(in_order, !reorder, "reorder = {reorder}");
        }
    }

    #[test]
    fn packets_in_flight_come_out_when_due_and_in_delivery_order() {
        let mut q = InFlight::default();
        q.push(30, "c");
        q.push(10, "a");
        q.push(20, "b");
        q.push(20, "b2");
        assert_eq!(q.next_due(), Some(10));
        assert_eq!(q.pop_due(9), None);
        assert_eq!(q.pop_due(10), Some("a"));
        assert_eq!(q.pop_due(25), Some("b"));
        assert_eq!(q.pop_due(25), Some("b2"));
        assert_eq!(q.pop_due(25), None);
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_due(100), Some("c"));
        assert!(q.is_empty());
    }
}
