//! `[network]`: the emulated link between the generator and the built-in targets (`rtt`,
//! `jitter`, `loss`, `bandwidth`, `queue`, `reorder`). Sizes are written like `"64KiB"`,
//! rates like `"100Mbit"`.

use super::{Cx, Section};
use crate::scenario::duration::number_and_unit;
use crate::scenario::NetworkConfig;

/// Reads `[network]`.
pub(super) fn network(cx: &mut Cx<'_>, s: &mut Section<'_>) -> Option<NetworkConfig> {
    let mut cfg = NetworkConfig::default();
    let mut ok = true;
    if let Some((ns, _)) = cx.duration(s, "rtt") {
        cfg.rtt_ns = ns;
    }
    if let Some((ns, line)) = cx.duration(s, "jitter") {
        // Jitter beyond the one-way delay would ask for packets to arrive before they left.
        if ns > cfg.rtt_ns / 2 {
            cx.problem(
                line,
                &s.child("jitter"),
                "must not exceed half of rtt (the one-way delay it varies)",
            );
            ok = false;
        }
        cfg.jitter_ns = ns;
    }
    if let Some((v, f)) = cx.number(s, "loss") {
        if (0.0..1.0).contains(&v) {
            cfg.loss = v;
        } else {
            cx.problem(
                f.line,
                &s.child("loss"),
                format!("must be a fraction from 0 up to (not including) 1 (got {v})"),
            );
            ok = false;
        }
    }
    if let Some((text, f)) = cx.string(s, "bandwidth") {
        match parse_bits_per_second(text) {
            Ok(bps) => cfg.bandwidth_bps = Some(bps),
            Err(why) => {
                cx.problem(f.line, &s.child("bandwidth"), why);
                ok = false;
            }
        }
    }
    if let Some((text, f)) = cx.string(s, "queue") {
        match parse_bytes(text) {
            // A queue must hold at least one full-size packet.
            Ok(b) if b >= 1500 => cfg.queue_bytes = b,
            Ok(b) => {
                cx.problem(
                    f.line,
                    &s.child("queue"),
                    format!("must hold at least one 1500-byte packet (got {b} bytes)"),
                );
                ok = false;
            }
            Err(why) => {
                cx.problem(f.line, &s.child("queue"), why);
                ok = false;
            }
        }
    }
    if let Some(v) = cx.boolean(s, "reorder") {
        cfg.reorder = v;
    }
    ok.then_some(cfg)
}

/// `"100Mbit"`, `"1.5Gbit"`, `"500kbit"`, `"12MB/s"` -> bits per second.
pub fn parse_bits_per_second(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (v, unit) = number_and_unit(t, &["Mbit"])?;
    let per_s = match unit {
        "bit" | "bps" => 1.0,
        "kbit" | "Kbit" => 1e3,
        "Mbit" => 1e6,
        "Gbit" => 1e9,
        "B/s" => 8.0,
        "kB/s" | "KB/s" => 8e3,
        "MB/s" => 8e6,
        "GB/s" => 8e9,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{t}` (use kbit, Mbit, Gbit, or kB/s, MB/s, GB/s)"
            ))
        }
    };
    let bps = v * per_s;
    if !(1e3..=1e11).contains(&bps) {
        return Err(format!("`{t}` must be from 1kbit to 100Gbit"));
    }
    Ok(bps.round() as u64)
}

/// `"64KiB"`, `"1MiB"`, `"1500B"`, `"100kB"` -> bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (v, unit) = number_and_unit(t, &["KiB"])?;
    let scale = match unit {
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "KiB" => 1024.0,
        "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{t}` (use B, KiB, MiB, kB or MB)"
            ))
        }
    };
    let b = v * scale;
    if !(0.0..=1024.0 * 1024.0 * 1024.0).contains(&b) {
        return Err(format!("`{t}` must be at most 1GiB"));
    }
    Ok(b.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_sizes_read_as_networks_write_them() {
        for (text, bps) in [
            ("100Mbit", 100_000_000),
            ("1.5Gbit", 1_500_000_000),
            ("500kbit", 500_000),
            ("12MB/s", 96_000_000),
        ] {
            assert_eq!(parse_bits_per_second(text), Ok(bps), "{text}");
        }
        for bad in ["100", "100Mbps!", "fast", "0.1bit"] {
            assert!(parse_bits_per_second(bad).is_err(), "{bad}");
        }
        for (text, b) in [("64KiB", 65_536), ("1MiB", 1 << 20), ("1500B", 1500)] {
            assert_eq!(parse_bytes(text), Ok(b), "{text}");
        }
        assert!(parse_bytes("64").is_err() && parse_bytes("2TiB").is_err());
    }
}
