//! The terminal summary: one row per metric, one column per model, units in every cell.

use std::fmt::Write;

use crate::model_kind::ModelKind;
use crate::record::results::{ModelSummary, Summary};

pub use crate::units::fmt_us;

/// Bytes as MiB.
pub fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Which way is better for a row, when models are compared.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Lower,
    Higher,
    Neither,
}

struct Row {
    label: &'static str,
    text: String,
    value: Option<f64>,
    better: Better,
}

fn row(label: &'static str, text: String, value: Option<f64>, better: Better) -> Row {
    Row {
        label,
        text,
        value,
        better,
    }
}

fn latency(label: &'static str, us: u64, count: u64) -> Row {
    if count == 0 {
        row(label, "-".into(), None, Better::Lower)
    } else {
        row(label, fmt_us(us), Some(us as f64), Better::Lower)
    }
}

/// Why WebSocket connects failed, e.g. ` (auth 300)`: their error kinds are all connects'.
fn connect_reasons(m: &ModelSummary) -> String {
    if m.fleet().is_none() || m.connections.failed == 0 {
        return String::new();
    }
    let mut reasons: Vec<(&String, &u64)> = m.errors.iter().filter(|(_, n)| **n > 0).collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let text: Vec<String> = reasons.iter().map(|(k, n)| format!("{k} {n}")).collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(" ({})", text.join(", "))
    }
}

fn rows(m: &ModelSummary) -> Vec<Row> {
    use Better::*;
    let l = &m.latency_us;
    let u = &m.uncorrected_latency_us;
    let mut failed = m.failed.to_string();
    if m.unfinished > 0 {
        failed += &format!(" ({} unfinished)", m.unfinished);
    }
    if m.dropped > 0 {
        failed += &format!(" ({} dropped)", m.dropped);
    }
    let ws = m.fleet();
    let net = m.network.as_ref();
    let dash = || "-".to_string();
    let cost_per_million = |cpu_s: f64| (m.delivered > 0).then(|| cpu_s / m.delivered as f64 * 1e6);
    let gen_cost = cost_per_million(m.resources.generator.cpu_s);
    let target_cost = cost_per_million(m.resources.target.cpu_s);
    vec![
        row(
            "rate, target / achieved",
            if m.target_rate > 0.0 {
                format!("{:.0} / {:.0} /s", m.target_rate, m.achieved_rate)
            } else if ws.is_some_and(|w| w.mode == "idle") {
                "idle".into()
            } else if ws.is_some_and(|w| w.mode == "echo") {
                format!("max / {:.0} /s", m.achieved_rate)
            } else if ws.is_some() {
                // Pushed by a server that paces itself.
                format!("- / {:.0} /s", m.achieved_rate)
            } else {
                // A closed-loop run has no target rate.
                format!("max / {:.0} /s", m.achieved_rate)
            },
            Some(m.achieved_rate),
            Higher,
        ),
        row("events", m.events.to_string(), None, Neither),
        row("delivered", m.delivered.to_string(), None, Neither),
        row(
            "failed / lost",
            failed,
            (m.events > 0).then_some(m.failed as f64),
            Lower,
        ),
        row(
            "retries",
            if ws.is_some() {
                dash()
            } else {
                m.retries.to_string()
            },
            None,
            Neither,
        ),
        row(
            "abandoned (410) / endpoints gone",
            if ws.is_some() {
                dash()
            } else {
                format!("{} / {}", m.abandoned, m.endpoints_gone)
            },
            None,
            Neither,
        ),
        row(
            "attempts per event p99 / max",
            if ws.is_some() || m.attempts_per_event.count == 0 {
                dash()
            } else {
                format!(
                    "{} / {}",
                    m.attempts_per_event.p99, m.attempts_per_event.max
                )
            },
            None,
            Neither,
        ),
        row(
            "duplicates / reordered",
            m.duplicates.to_string(),
            None,
            Neither,
        ),
        row("late sends (>1ms)", m.late_sends.to_string(), None, Neither),
        latency("latency p50", l.p50, l.count),
        latency("latency p90", l.p90, l.count),
        latency("latency p99", l.p99, l.count),
        latency("latency p99.9", l.p999, l.count),
        latency("latency max", l.max, l.count),
        row(
            "uncorrected p50 / p99",
            if u.count == 0 {
                dash()
            } else {
                format!("{} / {}", fmt_us(u.p50), fmt_us(u.p99))
            },
            None,
            Neither,
        ),
        latency(
            "schedule lag p99",
            m.schedule_lag_us.p99,
            m.schedule_lag_us.count,
        ),
        latency("connect p99", m.connect_us.p99, m.connect_us.count),
        latency(
            "TLS handshake p99",
            m.tls_handshake_us.p99,
            m.tls_handshake_us.count,
        ),
        row(
            "TLS handshakes full / resumed",
            m.tls.as_ref().map_or_else(dash, |t| {
                format!("{} / {} ({})", t.full, t.resumed, t.version)
            }),
            None,
            Neither,
        ),
        row(
            "connections peak / opened",
            format!("{} / {}", m.connections.peak, m.connections.opened),
            None,
            Neither,
        ),
        row(
            "reconnects / failed connects",
            format!(
                "{} / {}{}",
                m.connections.reconnects,
                m.connections.failed,
                connect_reasons(m)
            ),
            None,
            Neither,
        ),
        row(
            "recovery after loss / attempts",
            ws.filter(|w| w.reconnect_attempts > 0 || w.recovery_s > 0.0)
                .map_or_else(dash, |w| {
                    let pending = if w.down_at_end > 0 {
                        format!(", {} still down", w.down_at_end)
                    } else {
                        String::new()
                    };
                    format!("{:.2}s / {}{pending}", w.recovery_s, w.reconnect_attempts)
                }),
            None,
            Neither,
        ),
        row(
            "backlog latency p99",
            ws.filter(|w| w.backlog_latency_us.count > 0)
                .map_or_else(dash, |w| fmt_us(w.backlog_latency_us.p99)),
            None,
            Neither,
        ),
        row(
            "gaps (missed events)",
            ws.map_or_else(dash, |w| w.gaps.to_string()),
            None,
            Neither,
        ),
        row(
            "replayed after a resume",
            ws.filter(|_| m.model != ModelKind::WebSocket)
                .map_or_else(dash, |w| w.replayed.to_string()),
            None,
            Neither,
        ),
        row(
            "polls / event (events / answer)",
            ws.and_then(|w| w.polling.as_ref())
                .filter(|_| m.delivered > 0)
                .map_or_else(dash, |p| {
                    format!("{:.2} ({:.1})", p.polls_per_event, p.events_per_answer)
                }),
            None,
            Neither,
        ),
        row(
            "empty answers (hold ran out)",
            ws.and_then(|w| w.polling.as_ref())
                .map_or_else(dash, |p| p.empty_answers.to_string()),
            None,
            Neither,
        ),
        row(
            "pong RTT p99",
            ws.filter(|w| w.pong_rtt_us.count > 0)
                .map_or_else(dash, |w| fmt_us(w.pong_rtt_us.p99)),
            None,
            Neither,
        ),
        row(
            "ramp: all connected in",
            ws.filter(|w| w.ramp_s > 0.0).map_or_else(dash, |w| {
                format!("{:.2}s ({:.0}/s)", w.ramp_s, w.connects_per_s)
            }),
            None,
            Neither,
        ),
        row(
            "memory / connection, gen / target",
            ws.map_or_else(dash, |w| {
                format!(
                    "{:.1} / {:.1} KiB",
                    w.memory_per_connection_bytes.generator / 1024.0,
                    w.memory_per_connection_bytes.target / 1024.0
                )
            }),
            None,
            Neither,
        ),
        row(
            "network (emulated link)",
            net.map_or_else(dash, |n| n.settings.clone()),
            None,
            Neither,
        ),
        row(
            "link packets up / down",
            net.map_or_else(dash, |n| format!("{} / {}", n.up.packets, n.down.packets)),
            None,
            Neither,
        ),
        row(
            "link lost / queue drops",
            net.map_or_else(dash, |n| {
                format!(
                    "{} / {}",
                    n.up.lost + n.down.lost,
                    n.up.queue_drops + n.down.queue_drops
                )
            }),
            None,
            Neither,
        ),
        row(
            "link's own delay p50 / p99",
            net.map_or_else(dash, |n| {
                format!(
                    "{} / {}",
                    fmt_us(n.link_late_us.p50),
                    fmt_us(n.link_late_us.p99)
                )
            }),
            None,
            Neither,
        ),
        row(
            "link CPU (per packet)",
            net.map_or_else(dash, |n| {
                format!(
                    "{:.2} s ({:.1} us)",
                    m.resources.link.map_or(0.0, |l| l.cpu_s),
                    n.cpu_ns_per_packet / 1000.0
                )
            }),
            None,
            Neither,
        ),
        row(
            "generator CPU",
            format!("{:.2} s", m.resources.generator.cpu_s),
            None,
            Neither,
        ),
        row(
            "generator CPU / 1M events",
            gen_cost.map_or_else(dash, |c| format!("{c:.1} s")),
            gen_cost,
            Lower,
        ),
        row(
            "generator peak RSS",
            fmt_mib(m.resources.generator.peak_rss_bytes),
            Some(m.resources.generator.peak_rss_bytes as f64),
            Lower,
        ),
        row(
            "target CPU",
            format!("{:.2} s", m.resources.target.cpu_s),
            None,
            Neither,
        ),
        row(
            "target CPU / 1M events",
            target_cost.map_or_else(dash, |c| format!("{c:.1} s")),
            target_cost.filter(|c| *c > 0.0),
            Lower,
        ),
        row(
            "target peak RSS",
            fmt_mib(m.resources.target.peak_rss_bytes),
            Some(m.resources.target.peak_rss_bytes as f64).filter(|v| *v > 0.0),
            Lower,
        ),
        row(
            "bytes on the wire / event",
            if m.delivered > 0 {
                format!("{:.0} B", m.bytes_per_event)
            } else {
                dash()
            },
            (m.delivered > 0).then_some(m.bytes_per_event),
            Lower,
        ),
    ]
}

/// One cell of the comparison: its text, and whether it is the strictly better value of a
/// comparable row.
pub struct Cell {
    /// What the cell shows, with its unit.
    pub text: String,
    /// Marked as the better of the models.
    pub best: bool,
}

/// The comparison table as data, so the terminal and the HTML page show the same thing.
pub struct Grid {
    /// Column heads: the models.
    pub models: Vec<ModelKind>,
    /// (row label, one cell per model).
    pub rows: Vec<(&'static str, Vec<Cell>)>,
}

/// Builds the comparison table of a summary; with several models, the strictly better value of
/// each comparable row is marked.
pub fn grid(summary: &Summary) -> Grid {
    let columns: Vec<Vec<Row>> = summary.models.iter().map(rows).collect();
    let mut best = vec![vec![false; columns.first().map_or(0, Vec::len)]; columns.len()];
    if columns.len() > 1 {
        for i in 0..columns[0].len() {
            let better = columns[0][i].better;
            let values: Vec<Option<f64>> = columns.iter().map(|c| c[i].value).collect();
            if better == Better::Neither || values.iter().any(Option::is_none) {
                continue;
            }
            let values: Vec<f64> = values.into_iter().flatten().collect();
            let top = match better {
                Better::Lower => values.iter().cloned().fold(f64::INFINITY, f64::min),
                _ => values.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            };
            // Only a clear winner is marked: strictly best, and more than 1% ahead of the next
            // (2000.0 vs 1999.8 events/s is not a difference anyone should act on).
            let runner_up = values
                .iter()
                .filter(|v| **v != top)
                .map(|v| (v - top).abs())
                .fold(f64::INFINITY, f64::min);
            let clear = runner_up > 0.01 * top.abs().max(f64::MIN_POSITIVE);
            if values.iter().filter(|v| **v == top).count() == 1 && clear {
                for (c, column) in columns.iter().enumerate() {
                    best[c][i] = column[i].value == Some(top);
                }
            }
        }
    }
    let mut out = Grid {
        models: summary.models.iter().map(|m| m.model).collect(),
        rows: Vec::new(),
    };
    let mut columns: Vec<_> = columns
        .into_iter()
        .zip(best)
        .map(|(rows, best)| rows.into_iter().zip(best))
        .collect();
    while let Some(first) = columns.first_mut().and_then(Iterator::next) {
        let label = first.0.label;
        let mut cells = vec![Cell {
            text: first.0.text,
            best: first.1,
        }];
        for column in columns.iter_mut().skip(1) {
            let (r, best) = column.next().expect("every model has the same rows");
            cells.push(Cell { text: r.text, best });
        }
        // A row no model has a figure for (a fault that did not happen) is left out.
        if cells.iter().any(|c| c.text != "-") {
            out.rows.push((label, cells));
        }
    }
    out
}

/// Renders the comparison table and threshold verdicts. With several models, `*` marks the
/// better value of each comparable row.
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    let grid = grid(summary);
    let text = |c: &Cell| {
        if c.best {
            format!("{} *", c.text)
        } else {
            c.text.clone()
        }
    };
    let label_w = grid.rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let widths: Vec<usize> = grid
        .models
        .iter()
        .enumerate()
        .map(|(c, m)| {
            grid.rows
                .iter()
                .map(|r| text(&r.1[c]).len())
                .max()
                .unwrap_or(0)
                .max(m.name().len())
        })
        .collect();
    let latency_note = summary
        .models
        .iter()
        .map(|m| format!("{}: {}", m.model, m.latency_source))
        .collect::<Vec<_>>()
        .join("; ");
    let _ = writeln!(
        out,
        "\n{} ({}s measured after {}s warm-up{})\nlatency is measured from each event's intended time, at: {latency_note}",
        summary.scenario,
        summary.duration_s,
        summary.warmup_s,
        if summary.interrupted { ", INTERRUPTED" } else { "" }
    );
    let _ = write!(out, "{:label_w$}", "");
    for (m, w) in grid.models.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", m.name());
    }
    out.push('\n');
    for (label, cells) in &grid.rows {
        let _ = write!(out, "{label:label_w$}");
        for (c, w) in cells.iter().zip(&widths) {
            let _ = write!(out, "  {:>w$}", text(c));
        }
        out.push('\n');
    }
    if grid.models.len() > 1 {
        out.push_str("(* = best of the models on that row)\n");
    }
    for m in &summary.models {
        if let Some(line) = m.saturation.headline(m.model) {
            let _ = writeln!(
                out,
                "{}{line}",
                if m.saturation.generator { "! " } else { "" }
            );
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
