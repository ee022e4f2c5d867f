//! Numbers in words for sentences and tables: durations in microseconds, counts and rates.
//! A low layer: recording, reports and the capacity search all print with it.

/// Microseconds as `850us`, `1.25ms` or `1.90s`.
pub fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}us")
    }
}

/// 1234 -> "1.2k", 27_000 -> "27k", 1_234_567 -> "1.2M": counts and rates in a sentence.
pub fn si(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_two_or_three_digits() {
        assert_eq!(si(950.0), "950");
        assert_eq!(si(1_234.0), "1.2k");
        assert_eq!(si(27_000.0), "27k");
        assert_eq!(si(1_234_567.0), "1.2M");
        assert_eq!(fmt_us(850), "850us");
        assert_eq!(fmt_us(1_250), "1.25ms");
        assert_eq!(fmt_us(1_900_000), "1.90s");
    }
}
