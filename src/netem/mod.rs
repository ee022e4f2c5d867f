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

/// Capabilities the link needs: CAP_NET_ADMIN (devices, addresses, routes) and CAP_SYS_ADMIN
/// (`ip netns add` mounts the namespace's file), bits of `CapEff` in /proc/self/status.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// What a `[network]` run needs that this process lacks, in words; `None` when it has it all.
/// Checked before anything runs (exit 2).
pub fn missing_requirements() -> Option<String> {
    let caps = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    let mut missing = Vec::new();
    for (bit, name) in [
        (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    ] {
        if caps & (1 << bit) == 0 {
            missing.push(name.to_string());
        }
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        missing.push("the TUN device /dev/net/tun".into());
    }
    let ip = std::process::Command::new("ip")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if !ip.is_ok_and(|s| s.success()) {
        missing.push("the `ip` command (Debian: iproute2)".into());
    }
    (!missing.is_empty()).then(|| {
        format!(
            "[network] emulates the network in a namespace of its own and needs {}: run as \
             root (or in a container or CI runner with those capabilities), or remove \
             [network] to run on loopback",
            missing.join(", ")
        )
    })
}

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
        bytes_per_s: c.carried_bytes as f64 / secs,
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
        realtime: f.realtime,
        link_late_us: late,
        link_late_hist: crate::record::encode_hist(&f.late_us),
        cpu_ns_per_packet: link_cpu_s * 1e9 / (f.up.packets + f.down.packets).max(1) as f64,
    }
}

/// The `network` entry of shards merged (`merge`): each shard had a link of its own with the
/// same settings, so counts and rates add up, the busiest bottleneck speaks for utilization,
/// and the lateness histograms are added (never their percentiles). `link_cpu_s` is the
/// shards' link CPU together.
pub fn merged(
    parts: &[&crate::record::results::NetworkSummary],
    link_cpu_s: f64,
) -> Option<crate::record::results::NetworkSummary> {
    use crate::record::results::{LinkDirection, NetworkSummary};
    let first = *parts.first()?;
    let mut late = tun::PumpFigures::default().late_us;
    for p in parts {
        if let Ok(h) = crate::record::decode_hist(&p.link_late_hist) {
            let _ = late.add(&h);
        }
    }
    let direction = |pick: fn(&NetworkSummary) -> &LinkDirection| LinkDirection {
        packets: parts.iter().map(|p| pick(p).packets).sum(),
        bytes: parts.iter().map(|p| pick(p).bytes).sum(),
        lost: parts.iter().map(|p| pick(p).lost).sum(),
        queue_drops: parts.iter().map(|p| pick(p).queue_drops).sum(),
        bytes_per_s: parts.iter().map(|p| pick(p).bytes_per_s).sum(),
        utilization: parts
            .iter()
            .map(|p| pick(p).utilization)
            .fold(0.0, f64::max),
    };
    let (up, down) = (direction(|n| &n.up), direction(|n| &n.down));
    let p = crate::record::Percentiles::of(&late);
    Some(NetworkSummary {
        cpu_ns_per_packet: link_cpu_s * 1e9 / (up.packets + down.packets).max(1) as f64,
        up,
        down,
        kept_schedule: p.p99 <= LATE_P99_US,
        realtime: parts.iter().all(|n| n.realtime),
        link_late_us: p,
        link_late_hist: crate::record::encode_hist(&late),
        ..first.clone()
    })
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
        // What the generator's verdict adds only matters when the schedule was not kept.
        s.reason = if s.behind || s.generator {
            format!("{why}; {}", s.reason)
        } else {
            why
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
             the link's own delay besides the [network] settings",
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
             packets dropped at its full queue: these figures describe the [network] \
             settings, not the target",
            si(bw as f64),
            d.utilization * 100.0,
            si(d.bytes_per_s),
            drops
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(busy_ns: u64, queue_drops: u64, late_us: &[u64]) -> tun::PumpFigures {
        let mut f = tun::PumpFigures {
            elapsed_ns: 10_000_000_000,
            ..Default::default()
        };
        f.down = link::LinkCounts {
            packets: 10_000,
            bytes: 12_600_000,
            carried_bytes: 12_500_000,
            busy_ns,
            queue_drops,
            ..Default::default()
        };
        f.up.packets = 5_000;
        for &l in late_us {
            f.late_us.record(l).unwrap();
        }
        f
    }

    #[test]
    fn a_full_bottleneck_or_a_late_link_is_named_and_a_quiet_one_is_not() {
        let cfg = NetworkConfig {
            bandwidth_bps: Some(10_000_000),
            ..Default::default()
        };
        // 12.5 MB over 10 s is 1.25 MB/s: a 10 Mbit/s link kept busy all along.
        let full = summary_of(&cfg, &figures(9_800_000_000, 0, &[10]), 0.15);
        assert!((full.down.bytes_per_s - 1_250_000.0).abs() < 1.0);
        assert!((full.down.utilization - 0.98).abs() < 1e-9);
        assert!((full.cpu_ns_per_packet - 10_000.0).abs() < 1e-6);
        let why = link_limit(&full).expect("the link was the limit");
        assert!(
            why.contains("10.0Mbit/s down") && why.contains("98% busy"),
            "{why}"
        );
        // Drops at the queue name it too, however busy it was on average.
        assert!(link_limit(&summary_of(&cfg, &figures(1, 3, &[10]), 0.0)).is_some());
        // Half busy, nothing dropped, on time: not the link.
        let quiet = summary_of(&cfg, &figures(5_000_000_000, 0, &[10, 20]), 0.0);
        assert!(quiet.kept_schedule && link_limit(&quiet).is_none());
        // Without a bandwidth there is no bottleneck; a late pump is still named.
        let late = summary_of(&NetworkConfig::default(), &figures(0, 0, &[5_000]), 0.0);
        assert!(!late.kept_schedule);
        assert!(link_limit(&late)
            .unwrap()
            .contains("fell behind its own schedule"));
    }

    #[test]
    fn shards_merge_by_adding_counts_and_histograms_never_percentiles() {
        let cfg = NetworkConfig {
            rtt_ns: 40_000_000,
            ..Default::default()
        };
        // One shard on time (99 packets 10 us late), one with 99 packets 5 ms late: together
        // half are late, so the merged p99 is 5 ms, whatever the two p99s would average to.
        let a = summary_of(&cfg, &figures(0, 0, &[10; 99]), 1.0);
        let b = summary_of(&cfg, &figures(0, 0, &[5_000; 99]), 2.0);
        let m = merged(&[&a, &b], 3.0).unwrap();
        assert_eq!(m.rtt_us, 40_000, "settings are not summed");
        assert_eq!(m.down.packets, 20_000);
        assert_eq!(m.link_late_us.count, 198);
        assert!(
            (4_990..=5_010).contains(&m.link_late_us.p99),
            "{:?}",
            m.link_late_us
        );
        assert!(!m.kept_schedule);
        assert!((m.cpu_ns_per_packet - 3e9 / 30_000.0).abs() < 1e-6);
    }
}
