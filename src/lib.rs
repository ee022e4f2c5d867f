//! pushbench: a load-testing harness that delivers one scheduled event stream as webhooks and
//! over WebSockets, and measures what each delivers and costs.
//!
//! Map:
//! - [`scenario`]: TOML scenario files -> validated [`scenario::Scenario`] (every problem, with lines)
//! - [`schedule`]: pure pacing; event i -> intended time, subscriber
//! - [`webhook`]: the provider side: payload, signing schemes, HTTP client, delivery workers,
//!   retries
//! - [`websocket`]: framing, client, fleet workers (threads or processes), controller
//! - [`servers`]: built-in servers (webhook receiver, WebSocket server, sink) and how runs start
//!   them
//! - [`record`]: per-worker histograms and counters, interval merge, results files, and who
//!   saturated (generator or target)
//! - [`run`]: one run end to end; [`report`]: what the user reads (table, charts, report.html,
//!   JUnit), from the saved results only
//! - [`thresholds`]: pass/fail conditions parsed once (`< 50000`, `== 0`), the one lookup of a
//!   dotted metric in a run's summary, and threshold verdicts; scenarios and [`slo`] share them
//! - [`compare`]: regression verdicts between two results, judged against run-to-run noise
//! - [`clock`]: monotonic time and the microsecond timer the pacer sleeps on; [`units`]:
//!   durations, counts and rates in words
//! - [`serve`]: `pushbench serve ...`
//! - [`capacity`]: `pushbench capacity`: step the load up, bisect, report the highest that holds an
//!   [`slo`]; [`sweep`]: one run per value of a key ([`overrides`] edits the scenario's TOML)

pub mod capacity;
pub mod cli;
pub mod clock;
pub mod compare;
pub mod local;
pub mod overrides;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod serve;
pub mod servers;
pub mod slo;
pub mod sweep;
pub mod thresholds;
pub mod units;
pub mod webhook;
pub mod websocket;
