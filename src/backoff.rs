//! Exponential backoff with jitter, shared by every client that waits before trying again
//! (webhook retries, WebSocket reconnects, and the fallbacks' reconnects).

use crate::scenario::{Jitter, RetryPolicy};

/// Backoff before retry number `attempt` (0 = before the first retry); `u` is uniform in [0, 1).
/// Exponential (`initial * 2^attempt`, capped at `max`) with jitter; no schedule, no scale.
pub fn backoff_ns(policy: &RetryPolicy, attempt: u32, u: f64) -> u64 {
    let base = policy
        .initial_ns
        .saturating_mul(1u64 << attempt.min(40))
        .min(policy.max_ns);
    jittered(policy.jitter, base, u)
}

/// `base` with the jitter applied; `u` is uniform in [0, 1).
pub fn jittered(jitter: Jitter, base: u64, u: f64) -> u64 {
    match jitter {
        Jitter::None => base,
        Jitter::Full => (base as f64 * u) as u64,
        Jitter::Equal => base / 2 + (base as f64 / 2.0 * u) as u64,
    }
}
