//! Built-in targets: real servers on a bound listener with a shutdown signal, so the CLI
//! (`pushbench serve ...`), the harness (as a child process) and tests start them the same way.

pub mod launch;
pub mod receiver;
pub mod sink;
