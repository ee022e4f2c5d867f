//! Pure pacing: which events exist, when each one is meant to happen, and where it goes.
//!
//! Nothing here reads a clock. An [`Arrivals`] iterator yields the intended offset (ns from the
//! start of the run) of every event in order; [`Schedule`] adds fan-out and subscribers, and splits
//! the delivery stream between workers. Like vegeta's pacers, every shape is a table-tested pure
//! function, so the generator can be checked without running it.

/// One constant-rate stretch of a `steps` shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// Events per second during the step (0 pauses).
    pub rate_per_sec: f64,
    /// How long the step lasts.
    pub duration_ns: u64,
}

/// How event arrivals are spread over the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Shape {
    /// Evenly spaced events at a fixed rate.
    Constant { rate_per_sec: f64 },
    /// Exponential inter-arrival times around a mean rate (seeded, so repeatable).
    Poisson { rate_per_sec: f64 },
    /// Rate changes linearly from `from` to `to` over the whole run.
    Ramp { from_per_sec: f64, to_per_sec: f64 },
    /// `size` events at once, every `every_ns`.
    Burst { size: u64, every_ns: u64 },
    /// Piecewise-constant rates; the last step's rate holds until the end.
    Steps(Vec<Step>),
    /// Closed loop: every connection sends its next delivery as soon as the last is answered
    /// (peak throughput, as wrk measures it). There is no schedule, so nothing to correct for.
    Max,
}

impl Shape {
    /// The highest rate the shape asks for (events per second); `None` for closed loop.
    pub fn peak_rate_per_sec(&self) -> Option<f64> {
        match self {
            Shape::Constant { rate_per_sec } | Shape::Poisson { rate_per_sec } => {
                Some(*rate_per_sec)
            }
            Shape::Ramp {
                from_per_sec,
                to_per_sec,
            } => Some(from_per_sec.max(*to_per_sec)),
            // A burst is sent at once: treat it as its size per millisecond.
            Shape::Burst { size, .. } => Some(*size as f64 * 1000.0),
            Shape::Steps(steps) => Some(steps.iter().map(|s| s.rate_per_sec).fold(0.0, f64::max)),
            Shape::Max => None,
        }
    }
}

/// Deterministic 64-bit generator (splitmix64): tiny, fast, the same on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Intended offsets (ns since start) of every event of a shape, in order, ending before `total_ns`.
#[derive(Debug, Clone)]
pub struct Arrivals<'a> {
    shape: &'a Shape,
    total_ns: u64,
    index: u64,
    // Poisson: running time; steps: current step, its start and the index within it.
    clock_ns: f64,
    rng: SplitMix64,
    step: usize,
    step_start_ns: u64,
    step_index: u64,
}

impl<'a> Arrivals<'a> {
    /// Starts at the first event.
    pub fn new(shape: &'a Shape, total_ns: u64, seed: u64) -> Self {
        Self {
            shape,
            total_ns,
            index: 0,
            clock_ns: 0.0,
            rng: SplitMix64::new(seed),
            step: 0,
            step_start_ns: 0,
            step_index: 0,
        }
    }

    fn next_offset(&mut self) -> Option<u64> {
        let i = self.index as f64;
        let t = match self.shape {
            Shape::Max => return None,
            Shape::Constant { rate_per_sec } => i * 1e9 / rate_per_sec,
            Shape::Poisson { rate_per_sec } => {
                // Inverse CDF of the exponential; 1 - u is in (0, 1], so ln is finite.
                let gap = -(1.0 - self.rng.next_f64()).ln() / rate_per_sec;
                let at = self.clock_ns;
                self.clock_ns += gap * 1e9;
                at
            }
            Shape::Ramp {
                from_per_sec,
                to_per_sec,
            } => {
                // Events before t: N(t) = from*t + (to-from)*t^2/(2T). Solve N(t) = i with the
                // cancellation-free root t = 2i / (b + sqrt(b^2 + 4ai)).
                let total_s = self.total_ns as f64 / 1e9;
                let a = (to_per_sec - from_per_sec) / (2.0 * total_s);
                let b = *from_per_sec;
                let disc = b * b + 4.0 * a * i;
                if disc < 0.0 {
                    return None;
                }
                let denom = b + disc.sqrt();
                if i == 0.0 {
                    0.0
                } else if denom <= 0.0 {
                    return None;
                } else {
                    2.0 * i / denom * 1e9
                }
            }
            Shape::Burst { size, every_ns } => ((self.index / size) * every_ns) as f64,
            Shape::Steps(steps) => loop {
                let step = steps.get(self.step)?;
                let last = self.step + 1 == steps.len();
                let at = if step.rate_per_sec > 0.0 {
                    self.step_start_ns as f64 + self.step_index as f64 * 1e9 / step.rate_per_sec
                } else {
                    f64::INFINITY
                };
                let step_end = self.step_start_ns.saturating_add(step.duration_ns);
                if last || at < step_end as f64 {
                    self.step_index += 1;
                    break at;
                }
                self.step += 1;
                self.step_start_ns = step_end;
                self.step_index = 0;
            },
        };
        if !t.is_finite() || t >= self.total_ns as f64 {
            return None;
        }
        self.index += 1;
        Some(t as u64)
    }
}

impl Iterator for Arrivals<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        self.next_offset()
    }
}

/// One message to deliver: an event bound for one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivery {
    /// Unique per run, dense from 0: `event * fanout + j`.
    pub index: u64,
    /// Intended offset from the start of the run.
    pub intended_ns: u64,
    /// Subscriber number in `0..subscribers`.
    pub subscriber: u64,
}

/// One shard of a run spread over several machines (or processes): it owns the subscribers
/// with `subscriber % count == index`, all their deliveries and their connections. The shards'
/// schedules together are the whole run's, each delivery in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u64,
    /// Shards in the run (>= 1).
    pub count: u64,
}

impl Default for Shard {
    /// The whole run.
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// Whether this shard owns `subscriber`.
    pub fn owns(&self, subscriber: u64) -> bool {
        subscriber % self.count == self.index
    }

    /// How many of `subscribers` it owns.
    pub fn subscribers_of(&self, subscribers: u64) -> u64 {
        subscribers.saturating_sub(self.index).div_ceil(self.count)
    }

    /// Whether this is the whole run.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

/// The full delivery stream of a run: arrivals x fan-out, assigned round-robin to subscribers
/// (only those of its shard, when the run is sharded).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Schedule {
    /// Arrival shape.
    pub shape: Shape,
    /// Length of the run, warm-up included.
    pub total_ns: u64,
    /// Seed for random shapes.
    pub seed: u64,
    /// Subscribers per event (>= 1).
    pub fanout: u64,
    /// Number of subscribers (>= fanout).
    pub subscribers: u64,
    /// The shard whose deliveries these are.
    #[serde(default)]
    pub shard: Shard,
}

impl Schedule {
    /// Deliveries handled by worker `worker` of `workers` (`index % workers == worker`), in order.
    pub fn deliveries(&self, worker: u64, workers: u64) -> impl Iterator<Item = Delivery> + '_ {
        let fanout = self.fanout;
        let subscribers = self.subscribers;
        let shard = self.shard;
        Arrivals::new(&self.shape, self.total_ns, self.seed)
            .enumerate()
            .flat_map(move |(event, intended_ns)| {
                let first = event as u64 * fanout;
                (first..first + fanout)
                    .filter(move |d| shard.owns(d % subscribers) && d % workers == worker)
                    .map(move |index| Delivery {
                        index,
                        intended_ns,
                        subscriber: index % subscribers,
                    })
            })
    }

    /// Number of deliveries in the run (in its shard).
    pub fn delivery_count(&self) -> u64 {
        self.deliveries(0, 1).count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn offsets(shape: Shape, total_ns: u64) -> Vec<u64> {
        Arrivals::new(&shape, total_ns, 1).collect()
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let cases = [
            (1000.0, S, 1000, 1_000_000),
            (3.0, S, 3, 333_333_333),
            (2000.0, 2 * S, 4000, 500_000),
            (0.5, 3 * S, 2, 2 * S),
        ];
        for (rate, total, count, gap) in cases {
            let t = offsets(Shape::Constant { rate_per_sec: rate }, total);
            assert_eq!(t.len(), count, "rate {rate}");
            assert_eq!(t[0], 0);
            assert_eq!(t[1] - t[0], gap, "rate {rate}");
            assert!(*t.last().unwrap() < total);
        }
    }

    #[test]
    fn ramp_counts_the_area_under_the_rate_line() {
        // 100 -> 300/s over 2 s: mean 200/s, 400 events; the rate at the end is 3x the start.
        let t = offsets(
            Shape::Ramp {
                from_per_sec: 100.0,
                to_per_sec: 300.0,
            },
            2 * S,
        );
        assert!((399..=401).contains(&t.len()), "{}", t.len());
        let first_gap = t[1] - t[0];
        let last_gap = t[t.len() - 1] - t[t.len() - 2];
        assert!((first_gap as f64 / last_gap as f64 - 3.0).abs() < 0.1);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        // Ramping down to zero yields half the events of a flat `from` run.
        let down = offsets(
            Shape::Ramp {
                from_per_sec: 1000.0,
                to_per_sec: 0.0,
            },
            S,
        );
        assert!((499..=501).contains(&down.len()), "{}", down.len());
        // From zero still starts at t = 0 and ends near 500 events.
        let up = offsets(
            Shape::Ramp {
                from_per_sec: 0.0,
                to_per_sec: 1000.0,
            },
            S,
        );
        assert_eq!(up[0], 0);
        assert!((499..=501).contains(&up.len()), "{}", up.len());
    }

    #[test]
    fn burst_sends_groups_at_each_period() {
        let t = offsets(
            Shape::Burst {
                size: 500,
                every_ns: S,
            },
            3 * S,
        );
        assert_eq!(t.len(), 1500);
        assert!(t[..500].iter().all(|&x| x == 0));
        assert!(t[500..1000].iter().all(|&x| x == S));
        assert!(t[1000..].iter().all(|&x| x == 2 * S));
    }

    #[test]
    fn steps_change_rate_and_the_last_holds() {
        let steps = vec![
            Step {
                rate_per_sec: 10.0,
                duration_ns: S,
            },
            Step {
                rate_per_sec: 0.0,
                duration_ns: S,
            },
            Step {
                rate_per_sec: 100.0,
                duration_ns: S,
            },
        ];
        let t = offsets(Shape::Steps(steps), 4 * S);
        let in_window = |a: u64, b: u64| t.iter().filter(|&&x| x >= a && x < b).count();
        assert_eq!(in_window(0, S), 10);
        assert_eq!(in_window(S, 2 * S), 0);
        assert_eq!(in_window(2 * S, 3 * S), 100);
        assert_eq!(in_window(3 * S, 4 * S), 100, "last step holds to the end");
        assert_eq!(t.len(), 210);
    }

    #[test]
    fn poisson_is_repeatable_and_near_its_mean() {
        let shape = Shape::Poisson {
            rate_per_sec: 1000.0,
        };
        let a: Vec<u64> = Arrivals::new(&shape, 10 * S, 7).collect();
        let b: Vec<u64> = Arrivals::new(&shape, 10 * S, 7).collect();
        let c: Vec<u64> = Arrivals::new(&shape, 10 * S, 8).collect();
        assert_eq!(a, b, "same seed, same arrivals");
        assert_ne!(a, c, "another seed, other arrivals");
        // 10,000 expected; 4 standard deviations is 400.
        assert!((9600..=10400).contains(&a.len()), "{}", a.len());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn deliveries_fan_out_round_robin_and_split_between_workers() {
        let schedule = Schedule {
            shape: Shape::Constant { rate_per_sec: 10.0 },
            total_ns: S,
            seed: 1,
            fanout: 3,
            subscribers: 4,
            shard: Shard::default(),
        };
        assert_eq!(schedule.delivery_count(), 30);
        let all: Vec<Delivery> = schedule.deliveries(0, 1).collect();
        assert_eq!(all.len(), 30);
        assert_eq!(
            all[..4]
                .iter()
                .map(|d| (d.index, d.subscriber))
                .collect::<Vec<_>>(),
            vec![(0, 0), (1, 1), (2, 2), (3, 3)]
        );
        // The three copies of event 1 share its intended time.
        assert!(all[3..6].iter().all(|d| d.intended_ns == 100_000_000));
        let mut split: Vec<u64> = (0..3)
            .flat_map(|w| {
                schedule
                    .deliveries(w, 3)
                    .map(|d| d.index)
                    .collect::<Vec<_>>()
            })
            .collect();
        split.sort_unstable();
        assert_eq!(
            split,
            (0..30).collect::<Vec<_>>(),
            "workers cover each delivery once"
        );
    }
}
