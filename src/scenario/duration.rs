//! Human durations in scenario files: `"250ms"`, `"30s"`, `"2m"`, `"1.5h"`, `"500us"`.

/// Splits `"250ms"` into `(250.0, "ms")`, or says what is wrong: no unit (`example_units`
/// shows what to write, e.g. `["s", "ms"]` -> `write e.g. "250s" or "250ms"`), or no number.
/// Shared by every quantity with a unit in scenario files (durations, rates, sizes).
pub fn number_and_unit<'a>(
    text: &'a str,
    example_units: &[&str],
) -> Result<(f64, &'a str), String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            let examples: Vec<String> = example_units
                .iter()
                .map(|u| format!("\"{text}{u}\""))
                .collect();
            format!("`{text}` has no unit; write e.g. {}", examples.join(" or "))
        })?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    Ok((value, unit.trim()))
}

/// Parses a duration string into nanoseconds, or says what is wrong with it.
pub fn parse_duration_ns(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text, &["s", "ms"])?;
    let unit_ns = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}` (use ns, us, ms, s, m or h)"
            ))
        }
    };
    let ns = value * unit_ns;
    if !ns.is_finite() || ns > 366.0 * 86400e9 {
        return Err(format!("`{text}` is longer than a year"));
    }
    Ok(ns.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        let cases = [
            ("250ms", 250_000_000),
            ("30s", 30_000_000_000),
            ("2m", 120_000_000_000),
            ("1.5s", 1_500_000_000),
            ("500us", 500_000),
            ("1h", 3_600_000_000_000),
            ("0s", 0),
            (" 7 ms ", 7_000_000),
        ];
        for (text, ns) in cases {
            assert_eq!(parse_duration_ns(text), Ok(ns), "{text}");
        }
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for text in ["", "30", "s", "3 parsecs", "1e999s", "-5s", "9999999h"] {
            assert!(parse_duration_ns(text).is_err(), "{text}");
        }
    }
}
