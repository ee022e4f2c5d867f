//! Retry policy arithmetic and endpoint state shared by the delivery workers: how long to wait
//! before the next attempt (exponential backoff or a fixed schedule, jitter, `Retry-After`, a
//! time scale), and which endpoints answered 410 Gone and are disabled for the rest of the run.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::backoff::{backoff_ns, jittered};
use crate::scenario::RetryPolicy;

/// The wait before retry number `retry` (0 = the first retry) of a webhook delivery.
///
/// The backoff (or the schedule's entry) gets its jitter; a `Retry-After` the receiver sent is
/// honoured as a floor (never retry earlier than asked), both capped at `max`; then everything
/// is multiplied by `time_scale`, so a schedule of hours runs in seconds with its shape intact.
pub fn retry_wait_ns(policy: &RetryPolicy, retry: u32, u: f64, retry_after_s: Option<u32>) -> u64 {
    let planned = match policy.schedule_ns.len() {
        0 => backoff_ns(policy, retry, u),
        n => jittered(
            policy.jitter,
            policy.schedule_ns[(retry as usize).min(n - 1)].min(policy.max_ns),
            u,
        ),
    };
    let asked = retry_after_s.map_or(0, |s| (u64::from(s) * 1_000_000_000).min(policy.max_ns));
    (planned.max(asked) as f64 * policy.time_scale).round() as u64
}

/// Endpoints that answered 410 Gone, shared by every worker (one bit per subscriber, relaxed
/// atomics): a provider disables such an endpoint, so later deliveries to it are abandoned
/// without being sent, whichever worker has them.
#[derive(Debug)]
pub struct GoneEndpoints {
    bits: Box<[AtomicU64]>,
}

impl GoneEndpoints {
    /// None gone yet, for `subscribers` endpoints.
    pub fn new(subscribers: u64) -> Self {
        Self {
            bits: (0..subscribers.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// Whether the endpoint was disabled.
    #[inline]
    pub fn is_gone(&self, subscriber: u64) -> bool {
        self.bits
            .get((subscriber / 64) as usize)
            .is_some_and(|w| w.load(Relaxed) & (1 << (subscriber % 64)) != 0)
    }

    /// Disables the endpoint; true if this call did (false if it already was).
    pub fn mark(&self, subscriber: u64) -> bool {
        let Some(word) = self.bits.get((subscriber / 64) as usize) else {
            return false;
        };
        let bit = 1 << (subscriber % 64);
        word.fetch_or(bit, Relaxed) & bit == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Jitter;

    fn exponential(jitter: Jitter) -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            initial_ns: 100,
            max_ns: 1000,
            jitter,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let mut p = exponential(Jitter::None);
        let table: Vec<u64> = (0..6).map(|a| backoff_ns(&p, a, 0.5)).collect();
        assert_eq!(table, vec![100, 200, 400, 800, 1000, 1000]);
        p.jitter = Jitter::Full;
        assert_eq!(backoff_ns(&p, 2, 0.0), 0);
        assert_eq!(backoff_ns(&p, 2, 0.5), 200);
        assert!(backoff_ns(&p, 2, 0.999) < 400);
        p.jitter = Jitter::Equal;
        assert_eq!(backoff_ns(&p, 2, 0.0), 200);
        assert_eq!(backoff_ns(&p, 2, 0.5), 300);
        assert_eq!(
            backoff_ns(&p, 100, 0.0),
            500,
            "huge attempt numbers do not overflow"
        );
    }

    #[test]
    fn retry_after_is_a_floor_capped_at_max_and_everything_scales() {
        let s = 1_000_000_000;
        let mut p = RetryPolicy {
            initial_ns: s / 10,
            max_ns: 30 * s,
            jitter: Jitter::Full,
            ..RetryPolicy::default()
        };
        // Full jitter may pick 0; Retry-After: 2 still means 2 s.
        assert_eq!(retry_wait_ns(&p, 0, 0.0, Some(2)), 2 * s);
        // A backoff longer than Retry-After wins.
        p.jitter = Jitter::None;
        assert_eq!(retry_wait_ns(&p, 6, 0.0, Some(2)), 6_400_000_000);
        // Capped at max, then scaled.
        assert_eq!(retry_wait_ns(&p, 0, 0.0, Some(3600)), 30 * s);
        p.time_scale = 0.001;
        assert_eq!(retry_wait_ns(&p, 0, 0.0, Some(3600)), 30_000_000);
        assert_eq!(retry_wait_ns(&p, 0, 0.0, None), 100_000);
        // An absurd Retry-After with no cap and a slow-motion scale saturates, never wraps.
        p.max_ns = u64::MAX;
        p.time_scale = 1000.0;
        assert_eq!(retry_wait_ns(&p, 0, 0.0, Some(u32::MAX)), u64::MAX);
        assert_eq!(
            1_000u64.saturating_add(retry_wait_ns(&p, 0, 0.0, Some(u32::MAX))),
            u64::MAX,
            "the due time the provider computes stays in the future"
        );
    }

    #[test]
    fn a_schedule_is_followed_as_written_and_scaled() {
        // ["0s", "5s", "5m", "30m", "2h"] at time_scale 0.001.
        let p = RetryPolicy {
            attempts: 5,
            max_ns: u64::MAX,
            jitter: Jitter::None,
            schedule_ns: [5, 300, 1800, 7200].map(|s| s * 1_000_000_000).to_vec(),
            time_scale: 0.001,
            ..RetryPolicy::default()
        };
        let waits: Vec<u64> = (0..5).map(|r| retry_wait_ns(&p, r, 0.7, None)).collect();
        assert_eq!(
            waits,
            vec![
                5_000_000,
                300_000_000,
                1_800_000_000,
                7_200_000_000,
                7_200_000_000
            ]
        );
    }

    #[test]
    fn gone_endpoints_are_marked_once_and_seen_by_all() {
        let gone = GoneEndpoints::new(130);
        assert!(!gone.is_gone(129));
        assert!(gone.mark(129));
        assert!(!gone.mark(129), "the second 410 does not count again");
        assert!(gone.is_gone(129) && !gone.is_gone(128) && !gone.is_gone(1));
        assert!(!gone.mark(10_000), "out of range is ignored");
    }
}
