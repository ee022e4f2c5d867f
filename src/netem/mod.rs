//! Network conditions between the generator and the built-in targets (issue 15, begun): this
//! kernel has no `netem` qdisc, so the link will be a userspace one between two TUN devices,
//! the targets in a network namespace of their own behind it, the generator's sockets ordinary
//! kernel TCP. [`link`] is its pure core: per direction, seeded loss, a bottleneck of fixed
//! rate with a bounded queue, and the one-way delay with jitter, all on virtual time; [`tun`]
//! the namespace, the two devices and the pump that carries packets through it (not yet used
//! by runs: `[network]` is to come).

pub mod link;
pub mod tun;
