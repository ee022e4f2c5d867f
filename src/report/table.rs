//! The terminal summary: one row per metric, one column per model, units in every cell.

use std::fmt::Write;

use crate::record::results::{ModelSummary, Summary};

/// Microseconds as a short human figure (`850us`, `1.24ms`, `2.10s`).
pub fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}us")
    }
}

/// Bytes as MiB.
pub fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn rows(m: &ModelSummary) -> Vec<(&'static str, String)> {
    let l = &m.latency_us;
    let u = &m.uncorrected_latency_us;
    let mut failed = m.failed.to_string();
    if m.unfinished > 0 {
        failed += &format!(" ({} unfinished)", m.unfinished);
    }
    if m.dropped > 0 {
        failed += &format!(" ({} dropped)", m.dropped);
    }
    vec![
        (
            "rate, target / achieved",
            if m.target_rate > 0.0 {
                format!("{:.0} / {:.0} /s", m.target_rate, m.achieved_rate)
            } else {
                // A closed-loop run has no target rate.
                format!("max / {:.0} /s", m.achieved_rate)
            },
        ),
        ("events", m.events.to_string()),
        ("delivered", m.delivered.to_string()),
        ("failed", failed),
        ("retries", m.retries.to_string()),
        ("duplicates", m.duplicates.to_string()),
        ("late sends (>1ms)", m.late_sends.to_string()),
        ("latency p50", fmt_us(l.p50)),
        ("latency p90", fmt_us(l.p90)),
        ("latency p99", fmt_us(l.p99)),
        ("latency p99.9", fmt_us(l.p999)),
        ("latency max", fmt_us(l.max)),
        (
            "uncorrected p50 / p99",
            format!("{} / {}", fmt_us(u.p50), fmt_us(u.p99)),
        ),
        ("ack p99", fmt_us(m.ack_latency_us.p99)),
        ("schedule lag p99", fmt_us(m.schedule_lag_us.p99)),
        ("connect p99", fmt_us(m.connect_us.p99)),
        (
            "connections peak / opened",
            format!("{} / {}", m.connections.peak, m.connections.opened),
        ),
        (
            "generator CPU",
            format!("{:.2} s", m.resources.generator.cpu_s),
        ),
        (
            "generator peak RSS",
            fmt_mib(m.resources.generator.peak_rss_bytes),
        ),
        ("target CPU", format!("{:.2} s", m.resources.target.cpu_s)),
        (
            "target peak RSS",
            fmt_mib(m.resources.target.peak_rss_bytes),
        ),
        (
            "bytes on the wire / event",
            format!("{:.0} B", m.bytes_per_event),
        ),
    ]
}

/// Renders the comparison table and threshold verdicts.
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let columns: Vec<Vec<(&str, String)>> = summary.models.iter().map(rows).collect();
    let label_w = columns
        .first()
        .map_or(0, |c| c.iter().map(|(l, _)| l.len()).max().unwrap_or(0));
    let widths: Vec<usize> = columns
        .iter()
        .zip(&summary.models)
        .map(|(c, m)| {
            c.iter()
                .map(|(_, v)| v.len())
                .max()
                .unwrap_or(0)
                .max(m.model.len())
        })
        .collect();
    let latency_note = summary
        .models
        .iter()
        .map(|m| format!("{}: {}", m.model, m.latency_source))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        out,
        "\n{} ({}s measured after {}s warm-up{})  latency from intended time, measured at: {latency_note}",
        summary.scenario,
        summary.duration_s,
        summary.warmup_s,
        if summary.interrupted { ", INTERRUPTED" } else { "" }
    );
    let _ = write!(out, "{:label_w$}", "");
    for (m, w) in summary.models.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", m.model);
    }
    out.push('\n');
    if let Some(first) = columns.first() {
        for (i, (label, _)) in first.iter().enumerate() {
            let _ = write!(out, "{label:label_w$}");
            for (c, w) in columns.iter().zip(&widths) {
                let _ = write!(out, "  {:>w$}", c[i].1);
            }
            out.push('\n');
        }
    }
    if !summary.thresholds.is_empty() {
        out.push_str("\nthresholds:\n");
        for t in &summary.thresholds {
            let observed = t.observed.map_or("n/a".into(), |v| format!("{v}"));
            let _ = writeln!(
                out,
                "  {} {}  (observed {observed})",
                if t.pass { "PASS" } else { "FAIL" },
                t.expression
            );
        }
    }
    out
}
