//! Starting and stopping the built-in receiver for a run: as a child process of this binary (so
//! its CPU and memory are measured apart from the generator's), or on a thread of this process
//! (tests). Also the tiny client that pulls `/stats`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::receiver::{self, ReceiverOptions, ReceiverStats};
use crate::netem::tun::EmulatedLink;
use crate::scenario::{OutageMode, ReceiverConfig};
use crate::webhook::sign::SignatureScheme;

/// Environment variable that carries the secret to a child receiver (never the command line,
/// where any user could read it with `ps`).
pub const SECRET_ENV: &str = "PUSHBENCH_RECEIVER_SECRET";

/// How a child WebSocket server is given its upgrade token (never on its command line).
pub const WS_TOKEN_ENV: &str = "PUSHBENCH_WS_TOKEN";

/// How the harness runs built-in targets.
#[derive(Debug, Clone)]
pub enum TargetLaunch {
    /// As `<exe> serve ...` child processes.
    Child(PathBuf),
    /// On threads of this process (tests; target resources are not measured apart).
    InProcess,
}

enum Handle {
    Child(Child),
    InProcess {
        shutdown: tokio::sync::oneshot::Sender<()>,
        thread: std::thread::JoinHandle<()>,
    },
}

/// A receiver the harness started.
pub struct RunningTarget {
    /// Where the generator reaches it (across the emulated link when there is one).
    pub addr: SocketAddr,
    /// Where the harness pulls its `/stats`: `addr` on loopback, the link's unshaped control
    /// path behind an emulated link (so the pulls never queue behind the load).
    pub stats_addr: SocketAddr,
    /// Process ids to meter (empty when in-process).
    pub pids: Vec<u32>,
    /// The pump thread of the emulated link it sits behind, to meter as the `link` role.
    pub link_tid: Option<i32>,
    handle: Handle,
}

impl RunningTarget {
    /// Stops it and waits for it to exit.
    pub fn stop(self) {
        match self.handle {
            Handle::Child(mut child) => {
                // SAFETY: signalling our own child by its pid.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                for _ in 0..100 {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
            Handle::InProcess { shutdown, thread } => {
                let _ = shutdown.send(());
                let _ = thread.join();
            }
        }
    }
}

/// How long a built-in server child may take to print the line saying where it listens.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The first line a child server prints (where it listens), or why there is none within
/// `timeout`: a child that hangs before binding must not hang the run. On a timeout the
/// reading thread stays blocked until the caller kills the child.
fn startup_line(stdout: std::process::ChildStdout, timeout: Duration) -> Result<String, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(read.map(|_| line));
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(line)) => Ok(line),
        Ok(Err(e)) => Err(format!("(reading its output failed: {e})")),
        Err(_) => Err(format!(
            "(nothing within {} s of starting)",
            timeout.as_secs_f64()
        )),
    }
}

/// Where a built-in target listens: loopback, or every address of the emulated link's
/// namespace (its end of the shaped path and of the control path; nothing else is there).
fn listen_addr(net: Option<&EmulatedLink>) -> SocketAddr {
    let ip = match net {
        Some(_) => std::net::Ipv4Addr::UNSPECIFIED,
        None => std::net::Ipv4Addr::LOCALHOST,
    };
    SocketAddr::new(ip.into(), 0)
}

/// Where a target that bound `bound` (and `control`, its harness-side port) is reached: as
/// bound on loopback; behind a link, the same ports at the link's target address and at its
/// unshaped control address.
fn placed(
    net: Option<&EmulatedLink>,
    bound: SocketAddr,
    control: SocketAddr,
) -> (SocketAddr, SocketAddr) {
    match net {
        Some(link) => (
            SocketAddr::new(link.addrs.target.into(), bound.port()),
            SocketAddr::new(link.addrs.control.into(), control.port()),
        ),
        None => (bound, control),
    }
}

/// Puts a child into the link's namespace before it runs (its sockets are then the
/// namespace's). The returned file must outlive the spawn.
fn enter_netns(cmd: &mut Command, net: Option<&EmulatedLink>) -> Result<Option<File>, String> {
    let Some(link) = net else { return Ok(None) };
    let ns = File::open(link.ns_path())
        .map_err(|e| format!("cannot open the link's namespace {}: {e}", link.ns))?;
    let fd = ns.as_raw_fd();
    // SAFETY: setns is async-signal-safe; `fd` stays open until after the spawn.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(Some(ns))
}

/// Command-line arguments that reproduce a receiver configuration for `serve webhook`.
pub fn receiver_args(
    cfg: &ReceiverConfig,
    scheme: SignatureScheme,
    seed: u64,
    listen: SocketAddr,
) -> Vec<String> {
    let mut args = vec![
        "serve".into(),
        "webhook".into(),
        "--listen".into(),
        listen.to_string(),
        "--signature".into(),
        scheme.name().into(),
        "--seed".into(),
        seed.to_string(),
        "--delay".into(),
        format!("{}ns", cfg.delay_ns),
        "--fail-rate".into(),
        cfg.fail_rate.to_string(),
        "--max-body-bytes".into(),
        cfg.max_body_bytes.to_string(),
    ];
    if scheme != SignatureScheme::None {
        args.extend(["--secret-env".into(), SECRET_ENV.into()]);
    }
    if let Some(stall) = cfg.stall {
        args.extend([
            "--stall-at".into(),
            format!("{}ns", stall.at_ns),
            "--stall-for".into(),
            format!("{}ns", stall.for_ns),
        ]);
    }
    for o in &cfg.outages {
        let mode = match o.mode {
            OutageMode::Drop => "drop".to_string(),
            OutageMode::Unavailable {
                retry_after_s: Some(s),
            } => format!("503:{s}s"),
            OutageMode::Unavailable {
                retry_after_s: None,
            } => "503".to_string(),
        };
        args.extend([
            "--outage".into(),
            format!("{}ns:{}ns:{mode}", o.at_ns, o.for_ns),
        ]);
    }
    if let Some(t) = cfg.throttle {
        args.extend([
            "--throttle".into(),
            format!("{}:{}s", t.rate, t.retry_after_s),
        ]);
    }
    if cfg.gone_fraction > 0.0 {
        args.extend(["--gone".into(), cfg.gone_fraction.to_string()]);
    }
    if !cfg.verify {
        args.push("--no-verify".into());
    }
    args
}

/// Starts a receiver and waits until it accepts connections; with `tls`, it serves TLS with
/// that identity; with `net`, inside that link's namespace, reached across it.
pub fn launch_receiver(
    launch: &TargetLaunch,
    cfg: &ReceiverConfig,
    scheme: SignatureScheme,
    secret: Option<&str>,
    seed: u64,
    tls: Option<&crate::tls::Identity>,
    net: Option<&EmulatedLink>,
) -> Result<RunningTarget, String> {
    match launch {
        TargetLaunch::Child(exe) => {
            let mut cmd = Command::new(exe);
            cmd.args(receiver_args(cfg, scheme, seed, listen_addr(net)));
            let ns = enter_netns(&mut cmd, net)?;
            // The child reads its certificate and key before it says it listens; they are
            // removed then (the key never outlives the start-up in a file).
            let tls_files = match tls {
                Some(id) => Some(TlsFiles::write(id)?.pass_to(&mut cmd)),
                None => None,
            };
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if let Some(s) = secret {
                cmd.env(SECRET_ENV, s);
            }
            // SAFETY: prctl is async-signal-safe; the child dies with the harness.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    // Its own process group: a Ctrl-C at the terminal reaches only the harness,
                    // which then stops the target itself after collecting its last figures.
                    libc::setpgid(0, 0);
                    Ok(())
                });
            }
            let mut child = cmd.spawn().map_err(|e| {
                format!(
                    "cannot start the built-in receiver ({}): {e}",
                    exe.display()
                )
            })?;
            drop(ns);
            let stdout = child.stdout.take().expect("piped");
            let read = startup_line(stdout, STARTUP_TIMEOUT);
            drop(tls_files);
            let addr = read
                .as_deref()
                .unwrap_or_default()
                .split_once("://")
                .and_then(|(_, rest)| rest.trim().parse::<SocketAddr>().ok());
            match (&read, addr) {
                (Ok(_), Some(bound)) => {
                    // `/stats` is served on the same listener.
                    let (addr, stats_addr) = placed(net, bound, bound);
                    Ok(RunningTarget {
                        addr,
                        stats_addr,
                        pids: vec![child.id()],
                        link_tid: net.and_then(EmulatedLink::pump_tid),
                        handle: Handle::Child(child),
                    })
                }
                _ => {
                    let _ = child.kill();
                    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                    let printed = match &read {
                        Ok(line) => format!("it printed: {line:?}"),
                        Err(why) => why.clone(),
                    };
                    Err(format!(
                        "the built-in receiver did not start ({status}); {printed}"
                    ))
                }
            }
        }
        TargetLaunch::InProcess => {
            let listen = listen_addr(net);
            let listener = match net {
                Some(link) => {
                    crate::netem::tun::in_netns(&link.ns_path(), move || StdListener::bind(listen))
                }
                None => StdListener::bind(listen),
            }
            .map_err(|e| format!("bind: {e}"))?;
            listener.set_nonblocking(true).map_err(|e| e.to_string())?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            let (addr, stats_addr) = placed(net, bound, bound);
            let key = receiver::key_for(scheme, secret)?;
            let opts = ReceiverOptions {
                config: cfg.clone(),
                key,
                seed,
                tls: tls.map(|id| id.server_config()).transpose()?,
            };
            let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name("receiver".into())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(2)
                        .enable_all()
                        .build()
                        .expect("receiver runtime");
                    rt.block_on(async move {
                        let listener =
                            tokio::net::TcpListener::from_std(listener).expect("listener");
                        let _ = receiver::serve(listener, opts, async {
                            let _ = rx.await;
                        })
                        .await;
                    });
                })
                .map_err(|e| e.to_string())?;
            Ok(RunningTarget {
                addr,
                stats_addr,
                pids: Vec::new(),
                link_tid: net.and_then(EmulatedLink::pump_tid),
                handle: Handle::InProcess { shutdown, thread },
            })
        }
    }
}

/// A child target's certificate and key, in a directory only this user can read, removed on
/// drop.
struct TlsFiles {
    dir: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    tickets: std::path::PathBuf,
}

impl TlsFiles {
    fn write(id: &crate::tls::Identity) -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pushbench-tls-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let files = Self {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            tickets: dir.join("tickets.key"),
            dir,
        };
        std::fs::write(&files.cert, &id.chain_pem)
            .and_then(|()| std::fs::write(&files.key, &id.key_pem))
            .and_then(|()| std::fs::write(&files.tickets, id.ticket_key))
            .map_err(|e| format!("cannot write the target's certificate: {e}"))?;
        Ok(files)
    }
}

impl TlsFiles {
    /// Names the files on a child's command line.
    fn pass_to(self, cmd: &mut Command) -> Self {
        cmd.arg("--tls-cert").arg(&self.cert);
        cmd.arg("--tls-key").arg(&self.key);
        cmd.arg("--tls-ticket-key").arg(&self.tickets);
        self
    }
}

impl Drop for TlsFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `GET path` over a fresh connection; returns the body of a 200 answer.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("incomplete answer")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answer: {}", head.lines().next().unwrap_or("")));
    }
    Ok(raw[split + 4..].to_vec())
}

/// Pulls and decodes the receiver's `/stats` (histograms since the last pull).
pub fn fetch_stats(addr: SocketAddr) -> Result<ReceiverStats, String> {
    let body = http_get(addr, "/stats")?;
    serde_json::from_slice(&body).map_err(|e| format!("bad /stats answer: {e}"))
}

/// Built-in WebSocket server processes sharing one port.
pub struct RunningWsServers {
    /// The shared WebSocket address.
    pub addr: SocketAddr,
    /// Each process's control address.
    pub controls: Vec<SocketAddr>,
    /// Process ids to meter (empty when in-process).
    pub pids: Vec<u32>,
    /// The pump thread of the emulated link they sit behind, to meter as the `link` role.
    pub link_tid: Option<i32>,
    /// Behind an emulated link: the generator's source addresses on its shaped path (each its
    /// own ephemeral ports); empty on loopback.
    pub link_sources: Vec<std::net::IpAddr>,
    handles: Vec<Handle>,
}

impl RunningWsServers {
    /// Stops every process.
    pub fn stop(self) {
        for handle in self.handles {
            RunningTarget {
                addr: self.addr,
                stats_addr: self.addr,
                pids: Vec::new(),
                link_tid: None,
                handle,
            }
            .stop();
        }
    }
}

fn parse_ws_banner(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.split_once(" on ")?.1.split_once("://")?.1;
    let (ws, control) = rest.split_once(" control ")?;
    Some((ws.trim().parse().ok()?, control.trim().parse().ok()?))
}

/// Starts `processes` WebSocket servers on one port (the first picks a free one on `ip`);
/// with `tls`, they serve TLS with that identity; with `net`, inside that link's namespace
/// (on all its addresses: `ip` is then unused), reached across it, their control ports over
/// its unshaped control path.
pub fn launch_ws_servers(
    launch: &TargetLaunch,
    processes: usize,
    ip: std::net::IpAddr,
    token: Option<&str>,
    tls: Option<&crate::tls::Identity>,
    net: Option<&EmulatedLink>,
) -> Result<RunningWsServers, String> {
    let (mut listen, control_ip): (SocketAddr, std::net::IpAddr) = match net {
        Some(_) => (listen_addr(net), std::net::Ipv4Addr::UNSPECIFIED.into()),
        None => (SocketAddr::new(ip, 0), std::net::Ipv4Addr::LOCALHOST.into()),
    };
    let mut servers = RunningWsServers {
        addr: listen,
        controls: Vec::new(),
        pids: Vec::new(),
        link_tid: net.and_then(EmulatedLink::pump_tid),
        link_sources: net.map_or_else(Vec::new, |l| {
            l.addrs.sources().into_iter().map(Into::into).collect()
        }),
        handles: Vec::new(),
    };
    for _ in 0..processes.max(1) {
        match launch {
            TargetLaunch::Child(exe) => {
                let mut cmd = Command::new(exe);
                cmd.args([
                    "serve",
                    "ws",
                    "--listen",
                    &listen.to_string(),
                    "--control-ip",
                    &control_ip.to_string(),
                    "--processes",
                    "1",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
                if let Some(t) = token {
                    cmd.env(WS_TOKEN_ENV, t).args(["--token-env", WS_TOKEN_ENV]);
                }
                // Read before the start-up line, removed after it (as for the receiver).
                let tls_files = match tls {
                    Some(id) => Some(TlsFiles::write(id)?.pass_to(&mut cmd)),
                    None => None,
                };
                // SAFETY: prctl and setpgid are async-signal-safe.
                unsafe {
                    cmd.pre_exec(|| {
                        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                        libc::setpgid(0, 0);
                        Ok(())
                    });
                }
                let ns = enter_netns(&mut cmd, net)?;
                let mut child = cmd
                    .spawn()
                    .map_err(|e| format!("cannot start the built-in WebSocket server: {e}"))?;
                drop(ns);
                let line = startup_line(child.stdout.take().expect("piped"), STARTUP_TIMEOUT)
                    .unwrap_or_else(|e| e);
                drop(tls_files);
                let Some((bound, control)) = parse_ws_banner(&line) else {
                    let _ = child.kill();
                    let _ = child.wait();
                    servers.stop();
                    return Err(format!(
                        "the built-in WebSocket server did not start; it printed: {line:?}"
                    ));
                };
                listen = bound;
                let (addr, control) = placed(net, bound, control);
                servers.addr = addr;
                servers.controls.push(control);
                servers.pids.push(child.id());
                servers.handles.push(Handle::Child(child));
            }
            TargetLaunch::InProcess => {
                let (tx, rx) = std::sync::mpsc::channel();
                let (shutdown, stop_rx) = tokio::sync::oneshot::channel::<()>();
                let opts = super::ws_server::WsServerOptions {
                    token: token.map(str::to_string),
                    tls: tls.map(|id| id.server_config()).transpose()?,
                    ..Default::default()
                };
                let ns = net.map(|link| link.ns_path());
                let thread = std::thread::Builder::new()
                    .name("ws-server".into())
                    .spawn(move || {
                        if let Some(path) = ns {
                            if let Err(e) = crate::netem::tun::enter_netns_here(&path) {
                                let _ = tx.send(Err(format!("entering the link's namespace: {e}")));
                                return;
                            }
                        }
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("server runtime");
                        let local = tokio::task::LocalSet::new();
                        local.block_on(&rt, async move {
                            let bound = super::ws_server::bind(listen, control_ip);
                            let (listener, control) = match bound {
                                Ok(pair) => pair,
                                Err(e) => {
                                    let _ = tx.send(Err(e.to_string()));
                                    return;
                                }
                            };
                            let addrs = (listener.local_addr(), control.local_addr());
                            let _ = tx.send(match addrs {
                                (Ok(a), Ok(c)) => Ok((a, c)),
                                _ => Err("no local address".into()),
                            });
                            let _ = super::ws_server::serve(listener, control, opts, async {
                                let _ = stop_rx.await;
                            })
                            .await;
                        });
                    })
                    .map_err(|e| e.to_string())?;
                let (bound, control) = rx.recv().map_err(|e| e.to_string())??;
                listen = bound;
                let (addr, control) = placed(net, bound, control);
                servers.addr = addr;
                servers.controls.push(control);
                servers.handles.push(Handle::InProcess { shutdown, thread });
            }
        }
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_prints_nothing_does_not_hang_the_launch() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let read = startup_line(child.stdout.take().unwrap(), Duration::from_millis(200));
        let _ = child.kill();
        let _ = child.wait();
        let why = read.unwrap_err();
        assert!(why.contains("nothing within 0.2 s"), "{why}");
    }

    #[test]
    fn the_startup_line_is_read_when_it_comes() {
        let mut child = Command::new("sh")
            .args(["-c", "echo 'listening on http://127.0.0.1:9'; sleep 30"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let read = startup_line(child.stdout.take().unwrap(), Duration::from_secs(10));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(read.unwrap(), "listening on http://127.0.0.1:9\n");
    }
}
