//! The emulated link's plumbing: a network namespace for the targets, a TUN device on each side
//! (one here, one created from inside the namespace), addresses and routes between them, and a
//! pump thread that carries every IP packet from one device to the other through a [`Link`]
//! per direction. The generator's sockets stay ordinary kernel TCP: handshakes, slow start and
//! retransmissions are the kernel's. Needs CAP_NET_ADMIN; everything is named after the owner
//! (`pb-<pid>-<n>`) and removed when the [`EmulatedLink`] is dropped.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

use super::link::{Fate, InFlight, Link, LinkCounts, LinkSpec};
use crate::clock::mono_ns;

/// Addresses of one link, in 198.18.0.0/15 (RFC 2544: set aside for benchmarks, never routed):
/// the shaped path `198.18.2k.1` (generator) to `198.18.2k.2` (targets), and an unshaped
/// control path `198.18.2k+1.1` to `.2` (a veth pair) over which the harness publishes events
/// and pulls the targets' figures, so those never pay the emulated network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkAddrs {
    /// The generator's side of the shaped path.
    pub generator: Ipv4Addr,
    /// The targets' address across the shaped path.
    pub target: Ipv4Addr,
    /// The harness's side of the control path.
    pub control_here: Ipv4Addr,
    /// The targets' address on the control path.
    pub control: Ipv4Addr,
}

/// Extra generator addresses on the shaped path (`198.18.2k.16` to `.47`): each has its own
/// 28k ephemeral ports per target port, so a fleet can hold more connections across the link
/// than one address allows.
pub const SOURCES: u8 = 32;

impl LinkAddrs {
    /// The generator's extra source addresses on the shaped path.
    pub fn sources(&self) -> Vec<Ipv4Addr> {
        let [a, b, c, _] = self.generator.octets();
        (16..16 + SOURCES)
            .map(|d| Ipv4Addr::new(a, b, c, d))
            .collect()
    }

    /// The `k`-th link's addresses (`k` < 128).
    pub fn nth(k: u8) -> Self {
        let (a, b) = (2 * k, 2 * k + 1);
        Self {
            generator: Ipv4Addr::new(198, 18, a, 1),
            target: Ipv4Addr::new(198, 18, a, 2),
            control_here: Ipv4Addr::new(198, 18, b, 1),
            control: Ipv4Addr::new(198, 18, b, 2),
        }
    }
}

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// Opens a TUN device named `name` (non-blocking, raw IP packets) in the calling thread's
/// network namespace.
fn open_tun(name: &str) -> io::Result<OwnedFd> {
    // SAFETY: a plain open of a path we own the string of; the result is checked.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct ifreq: the name (16 bytes, NUL-terminated), then the flags.
    let mut ifr = [0u8; 40];
    let bytes = name.as_bytes();
    if bytes.len() >= 16 {
        return Err(io::Error::other("device name too long"));
    }
    ifr[..bytes.len()].copy_from_slice(bytes);
    ifr[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `ifr` is large enough for.
    if unsafe { libc::ioctl(owned.as_raw_fd(), TUNSETIFF as _, ifr.as_mut_ptr()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

/// Moves the calling thread into the namespace at `ns_path` (the process's other threads stay
/// where they are; sockets it makes from then on are the namespace's).
pub fn enter_netns_here(ns_path: &str) -> io::Result<()> {
    let ns = std::fs::File::open(ns_path)?;
    // SAFETY: setns on a namespace file we hold open; it affects this thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` on a thread that has entered the namespace at `ns_path` (the caller's threads stay
/// where they are).
pub fn in_netns<T: Send + 'static>(
    ns_path: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = ns_path.to_string();
    std::thread::spawn(move || {
        enter_netns_here(&path)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs `ip -batch -` on these commands, one per line.
fn ip_batch(commands: &str) -> io::Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(commands.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip -batch: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// What the link did so far, as the pump last published it (every 50 ms and at its end).
#[derive(Debug, Clone)]
pub struct PumpFigures {
    /// Generator to targets.
    pub up: LinkCounts,
    /// Targets to generator.
    pub down: LinkCounts,
    /// Packets written out at the far end, both directions.
    pub written: u64,
    /// Time since the pump started (the span its counts cover).
    pub elapsed_ns: u64,
    /// The pump runs at real-time priority (a link that delays or shapes).
    pub realtime: bool,
    /// How late each packet left against the time the link meant it to (microseconds): the
    /// pump's own delay. At `rtt = 0` it is all the link adds.
    pub late_us: Histogram<u64>,
}

impl Default for PumpFigures {
    fn default() -> Self {
        Self {
            up: LinkCounts::default(),
            down: LinkCounts::default(),
            written: 0,
            elapsed_ns: 0,
            realtime: false,
            late_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        }
    }
}

struct Shared {
    stop: AtomicBool,
    /// The pump thread's id, for its CPU in /proc/self/task (0 until it runs).
    tid: AtomicI32,
    figures: Mutex<PumpFigures>,
}

/// A running emulated link: the namespace, the two devices, the control path and the pump.
pub struct EmulatedLink {
    /// The namespace's name (`ip netns exec NAME ...` runs a target inside it).
    pub ns: String,
    /// Its addresses.
    pub addrs: LinkAddrs,
    shared: Arc<Shared>,
    pump: Option<std::thread::JoinHandle<()>>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Whether `addr` is on any interface of this namespace (another link holds it).
fn address_in_use(addr: Ipv4Addr) -> bool {
    Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(" {addr}/")))
        .unwrap_or(false)
}

impl EmulatedLink {
    /// Creates the namespace, devices and control path and starts the pump: `up` shapes what
    /// the generator sends, `down` what comes back. Picks the first free address pair, so
    /// several runs (shards on one machine) each get their own.
    pub fn start(up: LinkSpec, down: LinkSpec) -> io::Result<Self> {
        remove_leftovers();
        let mut last = io::Error::other("no free 198.18.0.0/15 address pair");
        for k in 0..128u8 {
            let addrs = LinkAddrs::nth(k);
            if address_in_use(addrs.generator) || address_in_use(addrs.control_here) {
                continue;
            }
            match Self::start_at(addrs, up, down) {
                Ok(link) => return Ok(link),
                // Another run took the pair between the check and the set-up: try the next.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn start_at(addrs: LinkAddrs, up: LinkSpec, down: LinkSpec) -> io::Result<Self> {
        let ns = format!(
            "pb-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &ns])?;
        // From here on, dropping `link` removes what exists.
        let mut link = Self {
            ns: ns.clone(),
            addrs,
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                tid: AtomicI32::new(0),
                figures: Mutex::new(PumpFigures::default()),
            }),
            pump: None,
        };
        let outer_name = format!("{ns}o");
        let inner_name = format!("{ns}i");
        let outer = open_tun(&outer_name)?;
        let inner_dev = inner_name.clone();
        let inner = in_netns(&format!("/run/netns/{ns}"), move || open_tun(&inner_dev))?;
        let (g, t) = (addrs.generator.to_string(), addrs.target.to_string());
        let in_use = |e: io::Error| {
            if e.to_string().contains("File exists") {
                io::Error::new(io::ErrorKind::AddrInUse, e.to_string())
            } else {
                e
            }
        };
        // The shaped path: a host route each way through the TUN pair.
        ip(&["addr", "add", &format!("{g}/32"), "dev", &outer_name]).map_err(in_use)?;
        let batch: String = addrs
            .sources()
            .iter()
            .map(|src| format!("addr add {src}/32 dev {outer_name}\n"))
            .collect();
        ip_batch(&batch).map_err(in_use)?;
        ip(&["link", "set", &outer_name, "mtu", "1500", "up"])?;
        ip(&["route", "add", &format!("{t}/32"), "dev", &outer_name]).map_err(in_use)?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{t}/32"),
            "dev",
            &inner_name,
        ])?;
        ip(&["-n", &ns, "link", "set", &inner_name, "mtu", "1500", "up"])?;
        // Back to the generator's addresses (its own and the extra sources: the /24 around
        // them; the target's own address stays local).
        let [a, b, c, _] = addrs.generator.octets();
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            &format!("{a}.{b}.{c}.0/24"),
            "dev",
            &inner_name,
        ])?;
        // The control path: a veth pair, unshaped.
        let (vh, vn) = (format!("{ns}v"), format!("{ns}w"));
        ip(&[
            "link", "add", &vh, "type", "veth", "peer", "name", &vn, "netns", &ns,
        ])?;
        let (ch, cn) = (addrs.control_here.to_string(), addrs.control.to_string());
        ip(&["addr", "add", &format!("{ch}/30"), "dev", &vh]).map_err(in_use)?;
        ip(&["link", "set", &vh, "up"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{cn}/30"), "dev", &vn])?;
        ip(&["-n", &ns, "link", "set", &vn, "up"])?;
        let shared = link.shared.clone();
        link.pump = Some(
            std::thread::Builder::new()
                .name("netem-pump".into())
                .spawn(move || {
                    pump(
                        outer,
                        inner,
                        Link::new(up),
                        Link::new(down),
                        up.shapes() || down.shapes(),
                        &shared,
                    )
                })?,
        );
        Ok(link)
    }

    /// The namespace's file, to enter it (`setns`).
    pub fn ns_path(&self) -> String {
        format!("/run/netns/{}", self.ns)
    }

    /// The pump thread's id (for its CPU under /proc/self/task), once it runs.
    pub fn pump_tid(&self) -> Option<i32> {
        for _ in 0..100 {
            match self.shared.tid.load(Ordering::Relaxed) {
                0 => std::thread::sleep(std::time::Duration::from_millis(1)),
                t => return Some(t),
            }
        }
        None
    }

    /// What the link did so far (as of the pump's last publication, at most 50 ms old).
    pub fn figures(&self) -> PumpFigures {
        self.shared
            .figures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the pump and removes everything; returns what the link did, to its end.
    pub fn finish(mut self) -> PumpFigures {
        self.stop_pump();
        self.figures()
    }

    fn stop_pump(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.pump.take() {
            let _ = p.join();
        }
    }
}

impl Drop for EmulatedLink {
    fn drop(&mut self) {
        self.stop_pump();
        // The TUN devices go with their descriptors (closed by the pump); the veth pair is
        // deleted by name (the namespace itself may live on unnamed while its sockets finish
        // TIME_WAIT, so its devices would otherwise linger with it).
        let _ = ip(&["link", "del", &format!("{}v", self.ns)]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// Removes the namespaces a crashed run left behind: `pb-<pid>-<n>` whose process is gone
/// (their devices went with the process). Never touches another name.
pub fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if let Some(pid) = leftover_pid(name) {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
    // The control path's outer end (`pb-<pid>-<n>v`) can outlive an unnamed namespace.
    let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `16: pb-6089-0v@if3: <...`
        let name = line.split(": ").nth(1).unwrap_or("");
        let name = name.split('@').next().unwrap_or("");
        if let Some(pid) = name.strip_suffix('v').and_then(leftover_pid) {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

/// The owner's pid of a namespace named by [`EmulatedLink::start`], if it is one.
fn leftover_pid(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix("pb-")?.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Packet buffers, reused: the pump allocates only while the packets in flight grow.
#[derive(Default)]
struct Pool(Vec<Vec<u8>>);

/// Largest packet read from a device (its MTU is 1500).
const PACKET_MAX: usize = 2048;

impl Pool {
    fn take(&mut self) -> Vec<u8> {
        let mut b = self
            .0
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(PACKET_MAX));
        b.resize(PACKET_MAX, 0);
        b
    }

    fn give(&mut self, b: Vec<u8>) {
        self.0.push(b);
    }
}

/// One direction of the pump: the device it reads, the link, the packets in flight.
struct Direction {
    from: RawFd,
    to: RawFd,
    link: Link,
    queue: InFlight<Vec<u8>>,
}

impl Direction {
    /// Reads every packet `from` has now and hands it to the link; what survives waits.
    fn take(&mut self, pool: &mut Pool) {
        loop {
            let mut b = pool.take();
            // SAFETY: reading into a buffer we own, of its length.
            let n = unsafe { libc::read(self.from, b.as_mut_ptr().cast(), b.len()) };
            if n <= 0 {
                pool.give(b);
                return;
            }
            b.truncate(n as usize);
            match self.link.offer(mono_ns(), n as usize) {
                Fate::At(t) => self.queue.push(t, b),
                Fate::Lost | Fate::QueueFull => pool.give(b),
            }
        }
    }

    /// Writes what is due at `now` to the far device; returns the packets written.
    fn deliver(&mut self, now: u64, pool: &mut Pool, late_us: &mut Histogram<u64>) -> u64 {
        let mut n = 0;
        while let Some(due) = self.queue.next_due().filter(|&t| t <= now) {
            let p = self.queue.pop_due(now).expect("due");
            // SAFETY: writing a buffer we own, of its length. A full device drops the
            // packet, as a full link would.
            unsafe { libc::write(self.to, p.as_ptr().cast(), p.len()) };
            let _ = late_us.record((now - due) / 1000);
            pool.give(p);
            n += 1;
        }
        n
    }
}

fn pump(outer: OwnedFd, inner: OwnedFd, up: Link, down: Link, realtime: bool, shared: &Shared) {
    // SAFETY: gettid and prctl have no preconditions; timer slack is this thread's own. A
    // timer slack of 1 ns lets ppoll wake when the next packet is due, not 50 us later.
    unsafe {
        shared.tid.store(libc::gettid(), Ordering::Relaxed);
        libc::prctl(libc::PR_SET_TIMERSLACK, 1);
    }
    // A link that delays or shapes stands for a network, which does not wait for this
    // machine's CPU: at real-time priority (SCHED_FIFO) it lets packets out on time while
    // generator and target keep both cores busy (`run wan` on 2 cores: its own delay p99
    // 0.1-0.4 ms, against 0.2-4.8 ms as an ordinary thread). A link that adds nothing (rtt 0,
    // no bandwidth) has no schedule but "now", and stays an ordinary thread: at real-time
    // priority every packet it woke a reader for preempted that reader, and keep-alive
    // webhooks through it ran at 68-70k/s against 73-86k/s. It sleeps whenever nothing is
    // due, so it never holds a core it does not use.
    if realtime {
        let fifo = libc::sched_param { sched_priority: 1 };
        // SAFETY: setting this thread's own scheduling policy; refused without
        // CAP_SYS_NICE, when it runs as an ordinary thread (and says so in its figures).
        let got = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &fifo) } == 0;
        shared
            .figures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .realtime = got;
    }
    let (o, i) = (outer.as_raw_fd(), inner.as_raw_fd());
    let mut dirs = [
        Direction {
            from: o,
            to: i,
            link: up,
            queue: InFlight::default(),
        },
        Direction {
            from: i,
            to: o,
            link: down,
            queue: InFlight::default(),
        },
    ];
    let mut pool = Pool::default();
    let mut mine = PumpFigures::default();
    let started = mono_ns();
    let mut published_at = started;
    loop {
        let stopping = shared.stop.load(Ordering::Relaxed);
        let now = mono_ns();
        if stopping || now - published_at >= 50_000_000 {
            let mut f = shared.figures.lock().unwrap_or_else(|e| e.into_inner());
            f.up = dirs[0].link.counts();
            f.down = dirs[1].link.counts();
            f.written = mine.written;
            f.elapsed_ns = now - started;
            let _ = f.late_us.add(&mine.late_us);
            mine.late_us.reset();
            published_at = now;
        }
        if stopping {
            return;
        }
        let next = dirs.iter().filter_map(|d| d.queue.next_due()).min();
        // Wake for the next packet due (to the nanosecond), or at least every 10 ms to notice
        // the stop.
        let wait_ns = next.map_or(10_000_000, |t| t.saturating_sub(now).min(10_000_000));
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: wait_ns as libc::c_long,
        };
        let mut fds = [o, i].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: polling two descriptors we own, through an array of their length.
        unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &timeout, std::ptr::null()) };
        for (d, fd) in dirs.iter_mut().zip(fds) {
            if fd.revents & libc::POLLIN != 0 {
                d.take(&mut pool);
            }
        }
        let now = mono_ns();
        for d in &mut dirs {
            mine.written += d.deliver(now, &mut pool, &mut mine.late_us);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_namespace_names_are_leftovers() {
        assert_eq!(leftover_pid("pb-4242-0"), Some(4242));
        for other in ["pb-x-0", "pb-4242", "pbx-4242-0", "blue", "pb-4242-0x"] {
            assert_eq!(leftover_pid(other), None, "{other}");
        }
    }
}
