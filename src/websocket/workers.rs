//! Fleet workers as processes of this binary, for fleets larger than one process may hold
//! (open-files limit). The parent writes a [`FleetSpec`] to the worker's stdin; the worker
//! writes one JSON line per interval report to stdout (histograms included, see
//! [`crate::record::wire`]); a reader thread in the parent feeds them into the same channel
//! the thread workers use, so the collector cannot tell the difference.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::record::wire::{from_line, to_line};
use crate::record::{Reporter, WorkerReport};
use crate::websocket::fleet::{run_fleet, FleetSpec};

/// A running worker process and the thread reading its reports.
pub struct WorkerProcess {
    child: Child,
    reader: std::thread::JoinHandle<()>,
}

impl WorkerProcess {
    /// Its process id (for CPU and memory metering).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the worker to finish (it stops by itself at the end of the run).
    pub fn wait(mut self) {
        let _ = self.reader.join();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `<exe> worker websocket` with the spec on its stdin.
pub fn spawn_worker_process(
    exe: &Path,
    spec: &FleetSpec,
    tx: UnboundedSender<WorkerReport>,
) -> std::io::Result<WorkerProcess> {
    let mut cmd = Command::new(exe);
    cmd.args(["worker", "websocket"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: prctl is async-signal-safe. The worker stays in our process group, so a terminal
    // Ctrl-C stops it as well as the harness.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(&serde_json::to_vec(spec).expect("specs serialize"))?;
    drop(stdin);
    let stdout = child.stdout.take().expect("piped");
    let worker = spec.worker;
    let reader = std::thread::Builder::new()
        .name(format!("ws-worker-{worker}-reader"))
        .spawn(move || {
            // At end of file without the last report (the process died), its drop says so.
            let tx = Reporter::new(tx, worker);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                match from_line(&line) {
                    Ok(report) => {
                        if !tx.send(report) {
                            return;
                        }
                    }
                    Err(e) => {
                        eprintln!("warning: fleet worker {worker} sent an unreadable report: {e}")
                    }
                }
            }
        })?;
    Ok(WorkerProcess { child, reader })
}

/// Passes the run's stop flag (Ctrl-C, SIGTERM to the harness alone, a worker that died) on
/// to the worker processes as SIGTERM, on which they finish briefly and send their last report,
/// as the thread workers do when they see the flag. Ends when `stop` or `done` is set; set
/// `done` and join it before the processes are reaped, so a signal never reaches a reused PID.
pub fn forward_stop(
    pids: Vec<u32>,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("ws-worker-stop".into())
        .spawn(move || {
            // Thread workers see the flag themselves: nothing to pass on.
            while !pids.is_empty() && !done.load(Ordering::Relaxed) {
                if stop.load(Ordering::Relaxed) {
                    for &pid in &pids {
                        // SAFETY: signalling a child of ours that has not been reaped yet.
                        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// The `worker websocket` entry point: reads the spec, runs the fleet, streams reports.
pub fn run_worker_process() -> Result<(), String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| format!("reading the worker spec: {e}"))?;
    let spec: FleetSpec =
        serde_json::from_str(&input).map_err(|e| format!("bad worker spec: {e}"))?;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let fleet_stop = stop.clone();
    let worker = spec.worker;
    let fleet = crate::local::spawn_local_thread("ws-fleet".into(), move || {
        run_fleet(spec, fleet_stop, Reporter::new(tx, worker))
    })
    .map_err(|e| e.to_string())?;
    let out = std::io::stdout();
    loop {
        if STOP.load(Ordering::Relaxed) {
            stop.store(true, Ordering::Relaxed);
        }
        match rx.try_recv() {
            // A fleet that died ends without its last line: the harness's reader tells.
            Ok(report) if report.died => break,
            Ok(report) => {
                let mut out = out.lock();
                let _ = writeln!(out, "{}", to_line(&report));
                let _ = out.flush();
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
        }
    }
    let _ = fleet.join();
    Ok(())
}
