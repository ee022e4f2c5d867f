//! `[network]` as the scenario gives it: what the emulated link between the generator and the
//! built-in targets adds, and the two directions of the link it makes.

/// `[network]`: what the emulated link between the generator and the built-in targets adds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkConfig {
    /// Added round-trip time (half each way).
    pub rtt_ns: u64,
    /// Each packet's one-way delay varies uniformly within +- this.
    pub jitter_ns: u64,
    /// Fraction of packets dropped, each direction.
    pub loss: f64,
    /// Bottleneck rate per direction, bits per second.
    pub bandwidth_bps: Option<u64>,
    /// Bytes the bottleneck may hold waiting.
    pub queue_bytes: u64,
    /// Jitter may reorder packets of a flow.
    pub reorder: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            rtt_ns: 0,
            jitter_ns: 0,
            loss: 0.0,
            bandwidth_bps: None,
            queue_bytes: 64 * 1024,
            reorder: false,
        }
    }
}

impl NetworkConfig {
    /// The link's two directions (generator to targets, then back), each with its own seed
    /// drawn from the scenario's.
    pub fn link_specs(
        &self,
        seed: u64,
    ) -> (crate::netem::link::LinkSpec, crate::netem::link::LinkSpec) {
        let one_way = |seed| crate::netem::link::LinkSpec {
            delay_ns: self.rtt_ns / 2,
            jitter_ns: self.jitter_ns,
            loss: self.loss,
            bandwidth_bps: self.bandwidth_bps,
            queue_bytes: self.queue_bytes,
            reorder: self.reorder,
            seed,
        };
        let mut rng = crate::schedule::SplitMix64::new(seed ^ 0x6e65_7465_6d00);
        (one_way(rng.next_u64()), one_way(rng.next_u64()))
    }

    /// `rtt 40.00ms, jitter 5.00ms, loss 1%, 100.0Mbit/s` for tables and headings.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("rtt {}", crate::units::fmt_us(self.rtt_ns / 1000))];
        if self.jitter_ns > 0 {
            parts.push(format!(
                "jitter {}",
                crate::units::fmt_us(self.jitter_ns / 1000)
            ));
        }
        if self.loss > 0.0 {
            parts.push(format!("loss {}%", self.loss * 100.0));
        }
        if let Some(b) = self.bandwidth_bps {
            parts.push(format!("{}bit/s", crate::units::si(b as f64)));
        }
        parts.join(", ")
    }
}
