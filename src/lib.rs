//! pushbench: a load-testing harness that delivers one scheduled event stream as webhooks and
//! over WebSockets, and measures what each delivers and costs.
//!
//! Map (lower layers first; a module imports only from those above it in this list, never a
//! driver from a layer it serves):
//! - [`clock`]: monotonic time and the microsecond timer the pacer sleeps on; [`units`]:
//!   durations, counts and rates in words; [`model_kind`]: the models by name;
//!   [`url_template`]: target URLs with a `{subscriber}` placeholder; [`envelope`]: the fixed
//!   part of each model's event (webhook JSON envelope, WebSocket event header)
//! - [`scenario`]: TOML scenario files -> validated [`scenario::Scenario`] (every problem, with
//!   lines; the signing schemes and their secrets by name); [`schedule`]: pure pacing, event i -> intended time, subscriber; [`backoff`]:
//!   exponential backoff with jitter
//! - [`tls`]: rustls client and server configurations from a scenario's `tls` settings,
//!   certificates made for a run, the probe handshake and its errors in words
//! - [`record`]: per-worker histograms and counters (and the error kinds they count), interval
//!   merge, results files, and who saturated (generator or target)
//! - [`run`]: one run end to end: its context, progress, signals, and the recording
//!   [`run::pipeline`] every model is a driver of
//! - the drivers: [`webhook`] (payload, signing and verifying, HTTP client, delivery workers,
//!   retries) and [`websocket`] (framing, client, fleet workers in threads or processes,
//!   controller, sequence bookkeeping)
//! - [`servers`]: the built-in servers (webhook receiver, WebSocket server, sink) and how runs
//!   start them
//! - [`thresholds`]: pass/fail conditions parsed once (`< 50000`, `== 0`), the one lookup of a
//!   dotted metric in a run's summary, and threshold verdicts; scenarios and [`slo`] share them
//! - [`report`]: what the user reads (table, charts, report.html, JUnit), from the saved
//!   results only; [`compare`]: regression verdicts between two results, judged against
//!   run-to-run noise
//! - [`capacity`]: step the load up, bisect, report the highest that holds an [`slo`];
//!   [`sweep`]: one run per value of a key ([`overrides`] edits the scenario's TOML)
//! - [`cli`]: the command line, typed; [`commands`]: each command, returning an outcome that
//!   `main` maps to an exit code; [`serve`]: `pushbench serve ...`

pub mod backoff;
pub mod capacity;
pub mod chunked;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod compare;
pub mod envelope;
pub mod local;
pub mod merge;
pub mod model_kind;
pub mod netem;
pub mod overrides;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod serve;
pub mod servers;
pub mod shards;
pub mod slo;
pub mod sse;
pub mod sweep;
pub mod thresholds;
pub mod tls;
pub mod units;
pub mod url_template;
pub mod webhook;
pub mod websocket;
