//! Network conditions between the generator and the built-in targets (`[network]`): this
//! kernel has no `netem` qdisc, so the link is a userspace one between two TUN devices (the
//! design of Mahimahi's shells), the targets in a network namespace of their own behind it,
//! the generator's sockets ordinary kernel TCP. [`link`] is its pure core: per direction,
//! seeded loss, a bottleneck of fixed rate with a bounded queue, and the one-way delay with
//! jitter, all on virtual time; [`tun`] the namespace, the two devices and the pump that
//! carries packets through it.

pub mod link;
pub mod tun;

use crate::scenario::NetworkConfig;

/// Starts the link a model's built-in targets sit behind, when the scenario has `[network]`
/// (and the targets are built in: an external target's network is the real one).
pub fn start_for(
    network: Option<&NetworkConfig>,
    builtin: bool,
    seed: u64,
) -> Result<Option<tun::EmulatedLink>, String> {
    let Some(cfg) = network.filter(|_| builtin) else {
        return Ok(None);
    };
    let (up, down) = cfg.link_specs(seed);
    tun::EmulatedLink::start(up, down)
        .map(Some)
        .map_err(|e| format!("cannot set up the emulated network ([network]): {e}"))
}

/// The link's own lateness (p99) from which it counts as not keeping its schedule.
pub const LATE_P99_US: u64 = 1_000;

/// The summary's `network` entry: the settings, what the link did (from the pump's figures),
/// and its CPU per packet (`link_cpu_s`, its thread's, from the run's meter).
pub fn summary_of(
    cfg: &NetworkConfig,
    f: &tun::PumpFigures,
    link_cpu_s: f64,
) -> crate::record::results::NetworkSummary {
    use crate::record::results::{LinkDirection, NetworkSummary};
    let secs = (f.elapsed_ns as f64 / 1e9).max(1e-9);
    let direction = |c: &link::LinkCounts| LinkDirection {
        packets: c.packets,
        bytes: c.bytes,
        lost: c.lost,
        queue_drops: c.queue_drops,
        bytes_per_s: c.bytes as f64 / secs,
        utilization: c.busy_ns as f64 / f.elapsed_ns.max(1) as f64,
    };
    let late = crate::record::Percentiles::of(&f.late_us);
    NetworkSummary {
        settings: cfg.describe(),
        rtt_us: cfg.rtt_ns / 1000,
        jitter_us: cfg.jitter_ns / 1000,
        loss: cfg.loss,
        bandwidth_bps: cfg.bandwidth_bps,
        up: direction(&f.up),
        down: direction(&f.down),
        kept_schedule: late.p99 <= LATE_P99_US,
        link_late_us: late,
        cpu_ns_per_packet: link_cpu_s * 1e9 / (f.up.packets + f.down.packets).max(1) as f64,
    }
}

/// Ends a model's link (if it had one) and puts what it did into the model's summary: the
/// `network` entry, and in `saturation` the link when it was the limit (its bottleneck busy,
/// its queue dropping) or could not keep its own schedule.
pub fn finish_into(
    link: Option<tun::EmulatedLink>,
    cfg: Option<&NetworkConfig>,
    summary: &mut crate::record::results::ModelSummary,
) {
    let (Some(link), Some(cfg)) = (link, cfg) else {
        return;
    };
    let figures = link.finish();
    let cpu = summary.resources.link.map_or(0.0, |c| c.cpu_s);
    let net = summary_of(cfg, &figures, cpu);
    if let Some(why) = link_limit(&net) {
        let s = &mut summary.saturation;
        s.link = true;
        s.reason = if s.reason.is_empty() {
            why
        } else {
            format!("{why}; {}", s.reason)
        };
    }
    summary.network = Some(net);
}

/// Utilization of the bottleneck from which the link counts as the limit.
const LINK_BUSY: f64 = 0.9;

/// Why the link, not the target, set the figures; `None` when it did not.
fn link_limit(n: &crate::record::results::NetworkSummary) -> Option<String> {
    use crate::units::si;
    if !n.kept_schedule {
        return Some(format!(
            "the emulated link fell behind its own schedule (p99 {} late): latency includes \
             the link's own delay",
            crate::units::fmt_us(n.link_late_us.p99)
        ));
    }
    let bw = n.bandwidth_bps?;
    let (dir, d) = [("up", &n.up), ("down", &n.down)]
        .into_iter()
        .max_by(|a, b| a.1.utilization.total_cmp(&b.1.utilization))?;
    let drops = n.up.queue_drops + n.down.queue_drops;
    (d.utilization >= LINK_BUSY || drops > 0).then(|| {
        format!(
            "the emulated link was the limit: {}bit/s {dir}, {:.0}% busy, {}B/s carried, {} \
             packets dropped at its full queue",
            si(bw as f64),
            d.utilization * 100.0,
            si(d.bytes_per_s),
            drops
        )
    })
}
