//! The WebSocket model: a fleet of client connections, one per subscriber, fed by the same
//! workload as the webhook model (push), sending it themselves (echo), or only held (idle).

pub mod backlog;
pub mod client;
pub mod controller;
pub mod fleet;
pub mod frame;
pub mod model;
pub mod proto;
pub mod sequence;
pub mod wire;
pub mod workers;
