//! Histogram helpers: fixed bounds, compact text encoding, summary percentiles.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest trackable latency: one hour in microseconds.
pub const MAX_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 1 us .. 1 h, 3 significant digits. Never resizes.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("static bounds are valid")
}

/// Base64 of the V2 deflate encoding (the format of HdrHistogram interval logs).
pub fn encode_hist(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut buf)
        .expect("serializing to memory cannot fail");
    B64.encode(buf)
}

/// Inverse of [`encode_hist`]; the result has the standard bounds so it can be added to others.
pub fn decode_hist(text: &str) -> Result<Histogram<u64>, String> {
    let raw = B64
        .decode(text.trim())
        .map_err(|e| format!("bad base64: {e}"))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut raw.as_slice())
        .map_err(|e| format!("bad histogram: {e:?}"))?;
    let mut out = new_hist();
    out.add(&h)
        .map_err(|e| format!("histogram out of bounds: {e:?}"))?;
    Ok(out)
}

/// The percentiles a summary shows, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    pub min: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Percentiles {
    /// Reads the summary figures off a histogram (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let q = |q: f64| h.value_at_quantile(q);
        Self {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: h.max(),
        }
    }
}

impl Percentiles {
    /// The same figures from exact counts by value (`counts[v]` samples of value `v`), for small
    /// integer distributions such as attempts per delivery.
    pub fn of_counts(counts: &[u64]) -> Self {
        let count: u64 = counts.iter().sum();
        if count == 0 {
            return Self::default();
        }
        let sum: u64 = counts.iter().enumerate().map(|(v, n)| v as u64 * n).sum();
        let q = |q: f64| {
            let rank = ((q * count as f64).ceil() as u64).max(1);
            let mut seen = 0;
            for (v, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return v as u64;
                }
            }
            counts.len() as u64 - 1
        };
        Self {
            count,
            min: counts.iter().position(|&n| n > 0).unwrap_or(0) as u64,
            mean: (sum as f64 / count as f64 * 10.0).round() / 10.0,
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: counts.iter().rposition(|&n| n > 0).unwrap_or(0) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_merges() {
        let mut a = new_hist();
        for v in 1..=1000 {
            a.record(v).unwrap();
        }
        let b = decode_hist(&encode_hist(&a)).unwrap();
        assert_eq!(b.len(), 1000);
        assert_eq!(b.value_at_quantile(0.5), a.value_at_quantile(0.5));
        let mut c = new_hist();
        c.add(&b).unwrap();
        c.add(&a).unwrap();
        assert_eq!(c.len(), 2000);
        let p = Percentiles::of(&c);
        assert!((499..=501).contains(&p.p50) && p.max >= 1000 && p.min == 1);
        assert_eq!(Percentiles::of(&new_hist()), Percentiles::default());
    }

    #[test]
    fn exact_counts_give_exact_percentiles() {
        // 90 deliveries took 1 attempt, 9 took 2, 1 took 5.
        let mut counts = [0u64; 8];
        (counts[1], counts[2], counts[5]) = (90, 9, 1);
        let p = Percentiles::of_counts(&counts);
        assert_eq!(
            (p.count, p.min, p.p50, p.p90, p.p99, p.max),
            (100, 1, 1, 1, 2, 5)
        );
        assert_eq!(p.mean, 1.1);
        assert_eq!(Percentiles::of_counts(&[0, 0]), Percentiles::default());
    }
}
