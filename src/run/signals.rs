//! Ctrl-C and SIGTERM: the run's collectors stop their workers on the first and exit on the
//! second; commands that run several scenarios in a row remember one between runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::context::RunContext;
use super::progress::Progress;

type Signal = std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>;

/// Ctrl-C or SIGTERM (what CI runners and `timeout` send), whichever comes first.
fn interrupt_signal() -> Signal {
    Box::pin(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })
}

/// Ctrl-C and SIGTERM as the models' collectors see them.
pub struct Interrupts {
    signal: Signal,
}

impl Default for Interrupts {
    fn default() -> Self {
        Self {
            signal: interrupt_signal(),
        }
    }
}

impl Interrupts {
    /// Waits for the next worker report. The first Ctrl-C sets `stop` (workers wind down and
    /// the results so far are written); a second one exits at once.
    pub async fn next_report(
        &mut self,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::record::WorkerReport>,
        ctx: &RunContext,
        stop: &AtomicBool,
        progress: &Progress,
    ) -> Option<crate::record::WorkerReport> {
        loop {
            tokio::select! {
                r = rx.recv() => {
                    if ctx.interrupted.load(Ordering::Relaxed) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    return r;
                }
                _ = &mut self.signal => {
                    ctx.mark_stopped();
                    if ctx.interrupted.swap(true, Ordering::Relaxed) {
                        eprintln!("interrupted again: exiting without writing the summary");
                        std::process::exit(130);
                    }
                    stop.store(true, Ordering::Relaxed);
                    progress.note("interrupted: stopping, writing results so far (Ctrl-C again to abort)");
                    self.signal = interrupt_signal();
                }
            }
        }
    }
}

/// Remembers a Ctrl-C or SIGTERM for commands that run several scenarios in a row
/// (`capacity`, `sweep`): a run's own handler stops that run, and this one also catches one
/// between runs, which no run is listening for. Dropping it stops watching.
pub struct CtrlCFlag {
    set: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl CtrlCFlag {
    /// Starts watching (inside a tokio runtime).
    pub fn watch() -> Self {
        let set = Arc::new(AtomicBool::new(false));
        let flag = set.clone();
        let task = tokio::spawn(async move {
            if interrupt_signal().await.is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        });
        Self { set, task }
    }

    /// Whether Ctrl-C or SIGTERM came since [`CtrlCFlag::watch`].
    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }
}

impl Drop for CtrlCFlag {
    fn drop(&mut self) {
        self.task.abort();
    }
}
