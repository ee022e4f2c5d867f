//! Interval records as JSON lines, for worker processes reporting to the parent: histograms
//! travel as V2-compressed base64 (never percentiles), so the parent's merge is exact.

use serde::{Deserialize, Serialize};

use super::{decode_hist, encode_hist, IntervalStats, PhaseStats, WorkerReport, COUNTERS};

#[derive(Serialize, Deserialize)]
struct PhaseWire {
    ack: String,
    ack_uncorrected: String,
    connect: String,
    tls_handshake: String,
    lag: String,
    rtt: String,
    backlog: String,
    counters: Vec<u64>,
}

/// One worker report on the wire.
#[derive(Serialize, Deserialize)]
pub struct ReportWire {
    worker: u64,
    interval: u64,
    last: bool,
    phases: [PhaseWire; 2],
    open_connections: u64,
    #[serde(default)]
    peak_connections: u64,
    backlog: u64,
    ramps_done: u64,
    ramp_done_mono: u64,
    rss_baseline_bytes: u64,
    last_delivery_mono: u64,
    first_loss_mono: u64,
    recovered_mono: u64,
    down_at_close: u64,
}

fn phase_to(p: &PhaseStats) -> PhaseWire {
    PhaseWire {
        ack: encode_hist(&p.ack),
        ack_uncorrected: encode_hist(&p.ack_uncorrected),
        connect: encode_hist(&p.connect),
        tls_handshake: encode_hist(&p.tls_handshake),
        lag: encode_hist(&p.lag),
        rtt: encode_hist(&p.rtt),
        backlog: encode_hist(&p.backlog),
        counters: p.counters.to_vec(),
    }
}

fn phase_from(w: &PhaseWire) -> Result<PhaseStats, String> {
    let mut p = PhaseStats::new();
    p.ack = decode_hist(&w.ack)?;
    p.ack_uncorrected = decode_hist(&w.ack_uncorrected)?;
    p.connect = decode_hist(&w.connect)?;
    p.tls_handshake = decode_hist(&w.tls_handshake)?;
    p.lag = decode_hist(&w.lag)?;
    p.rtt = decode_hist(&w.rtt)?;
    p.backlog = decode_hist(&w.backlog)?;
    if w.counters.len() != COUNTERS {
        return Err(format!(
            "{} counters, expected {COUNTERS} (mixed versions?)",
            w.counters.len()
        ));
    }
    p.counters.copy_from_slice(&w.counters);
    Ok(p)
}

/// Serializes a report as one JSON line (no trailing newline).
pub fn to_line(r: &WorkerReport) -> String {
    let s = &r.stats;
    serde_json::to_string(&ReportWire {
        worker: r.worker,
        interval: r.interval,
        last: r.last,
        phases: [phase_to(&s.phases[0]), phase_to(&s.phases[1])],
        open_connections: s.open_connections,
        peak_connections: s.peak_connections,
        backlog: s.backlog,
        ramps_done: s.ramps_done,
        ramp_done_mono: s.ramp_done_mono,
        rss_baseline_bytes: s.rss_baseline_bytes,
        last_delivery_mono: s.last_delivery_mono,
        first_loss_mono: s.first_loss_mono,
        recovered_mono: s.recovered_mono,
        down_at_close: s.down_at_close,
    })
    .expect("reports serialize")
}

/// Parses one line written by [`to_line`].
pub fn from_line(line: &str) -> Result<WorkerReport, String> {
    let w: ReportWire = serde_json::from_str(line).map_err(|e| e.to_string())?;
    Ok(WorkerReport {
        worker: w.worker,
        interval: w.interval,
        last: w.last,
        died: false,
        stats: IntervalStats {
            phases: [phase_from(&w.phases[0])?, phase_from(&w.phases[1])?],
            open_connections: w.open_connections,
            peak_connections: w.peak_connections,
            backlog: w.backlog,
            ramps_done: w.ramps_done,
            ramp_done_mono: w.ramp_done_mono,
            rss_baseline_bytes: w.rss_baseline_bytes,
            last_delivery_mono: w.last_delivery_mono,
            first_loss_mono: w.first_loss_mono,
            recovered_mono: w.recovered_mono,
            down_at_close: w.down_at_close,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Counter, MEASURED};

    #[test]
    fn reports_round_trip_exactly() {
        let mut stats = IntervalStats::default();
        for v in 1..=500 {
            stats.phases[MEASURED].ack.record(v).unwrap();
        }
        stats.phases[MEASURED].bump(Counter::Delivered, 500);
        stats.phases[0].rtt.record(42).unwrap();
        stats.open_connections = 7;
        stats.rss_baseline_bytes = 1 << 20;
        let r = WorkerReport {
            worker: 3,
            interval: 9,
            stats,
            last: true,
            died: false,
        };
        let back = from_line(&to_line(&r)).unwrap();
        assert_eq!((back.worker, back.interval, back.last), (3, 9, true));
        assert_eq!(
            back.stats.phases[MEASURED].ack,
            r.stats.phases[MEASURED].ack
        );
        assert_eq!(back.stats.phases[0].rtt.len(), 1);
        assert_eq!(back.stats.total(Counter::Delivered), 500);
        assert_eq!(
            (back.stats.open_connections, back.stats.rss_baseline_bytes),
            (7, 1 << 20)
        );
        assert!(from_line("{\"worker\":1}").is_err());
    }
}
