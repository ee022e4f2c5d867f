//! The emulated link's plumbing: a network namespace for the targets, a TUN device on each side
//! (one here, one created from inside the namespace), addresses and routes between them, and a
//! pump thread that carries every IP packet from one device to the other through a [`Link`]
//! per direction. The generator's sockets stay ordinary kernel TCP: handshakes, slow start and
//! retransmissions are the kernel's. Needs CAP_NET_ADMIN; everything is named after the owner
//! (`pb-<pid>-<n>`) and removed when the [`EmulatedLink`] is dropped.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::link::{Fate, InFlight, Link, LinkSpec};
use crate::clock::mono_ns;

/// The generator's side of the link.
pub const GENERATOR_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 77, 0, 1);
/// The targets' address, inside the namespace.
pub const TARGET_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 77, 0, 2);

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

/// Runs `f` on a thread that has entered the namespace at `ns_path` (the caller's threads stay
/// where they are).
pub fn in_netns<T: Send + 'static>(
    ns_path: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let path = ns_path.to_string();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path)?;
        // SAFETY: setns on a namespace file we hold open; it affects this thread only.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
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

/// A running emulated link: the namespace, the two devices and the pump.
pub struct EmulatedLink {
    /// The namespace's name (`ip netns exec NAME ...` runs a target inside it).
    pub ns: String,
    stop: Arc<AtomicBool>,
    pump: Option<std::thread::JoinHandle<()>>,
    /// Packets carried, both directions.
    pub packets: Arc<AtomicU64>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl EmulatedLink {
    /// Creates the namespace and devices and starts the pump: `up` shapes what the generator
    /// sends, `down` what comes back.
    pub fn start(up: LinkSpec, down: LinkSpec) -> io::Result<Self> {
        remove_leftovers();
        let ns = format!(
            "pb-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &ns])?;
        // From here on, dropping `link` removes what exists.
        let mut link = Self {
            ns: ns.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            pump: None,
            packets: Arc::new(AtomicU64::new(0)),
        };
        let outer_name = format!("{ns}o");
        let inner_name = format!("{ns}i");
        let outer = open_tun(&outer_name)?;
        let inner_dev = inner_name.clone();
        let inner = in_netns(&format!("/run/netns/{ns}"), move || open_tun(&inner_dev))?;
        let (g, t) = (GENERATOR_IP.to_string(), TARGET_IP.to_string());
        ip(&["addr", "add", &format!("{g}/32"), "dev", &outer_name])?;
        ip(&["link", "set", &outer_name, "up"])?;
        ip(&["route", "add", &format!("{t}/32"), "dev", &outer_name])?;
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
        ip(&["-n", &ns, "link", "set", &inner_name, "up"])?;
        ip(&[
            "-n",
            &ns,
            "route",
            "add",
            &format!("{g}/32"),
            "dev",
            &inner_name,
        ])?;
        let stop = link.stop.clone();
        let packets = link.packets.clone();
        link.pump = Some(
            std::thread::Builder::new()
                .name("netem-pump".into())
                .spawn(move || {
                    pump(
                        outer,
                        inner,
                        Link::new(up),
                        Link::new(down),
                        &stop,
                        &packets,
                    )
                })?,
        );
        Ok(link)
    }
}

impl Drop for EmulatedLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(p) = self.pump.take() {
            let _ = p.join();
        }
        // The devices go with their descriptors (closed by the pump); the namespace by name.
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
}

/// The owner's pid of a namespace named by [`EmulatedLink::start`], if it is one.
fn leftover_pid(name: &str) -> Option<u32> {
    let (pid, n) = name.strip_prefix("pb-")?.split_once('-')?;
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Reads every packet `from` has now and hands it to `link`; what survives waits in `queue`.
fn take_packets(from: RawFd, link: &mut Link, queue: &mut InFlight<Vec<u8>>, buf: &mut [u8]) {
    loop {
        // SAFETY: reading into a buffer we own, of its length.
        let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return;
        }
        let n = n as usize;
        if let Fate::At(t) = link.offer(mono_ns(), n) {
            queue.push(t, buf[..n].to_vec());
        }
    }
}

/// Writes what is due from `queue` to `to`.
fn deliver(to: RawFd, queue: &mut InFlight<Vec<u8>>, now: u64, packets: &AtomicU64) {
    while let Some(p) = queue.pop_due(now) {
        // SAFETY: writing a buffer we own, of its length. A full device drops the packet, as
        // a full link would.
        unsafe { libc::write(to, p.as_ptr().cast(), p.len()) };
        packets.fetch_add(1, Ordering::Relaxed);
    }
}

fn pump(
    outer: OwnedFd,
    inner: OwnedFd,
    mut up: Link,
    mut down: Link,
    stop: &AtomicBool,
    packets: &AtomicU64,
) {
    let (o, i) = (outer.as_raw_fd(), inner.as_raw_fd());
    let mut to_inner: InFlight<Vec<u8>> = InFlight::default();
    let mut to_outer: InFlight<Vec<u8>> = InFlight::default();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        let now = mono_ns();
        let next = [to_inner.next_due(), to_outer.next_due()]
            .into_iter()
            .flatten()
            .min();
        // Wake for the next packet due (to the nanosecond), or at least every 10 ms to notice
        // the stop.
        let wait_ns = next.map_or(10_000_000, |t| t.saturating_sub(now).min(10_000_000));
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: wait_ns as libc::c_long,
        };
        let mut fds = [
            libc::pollfd {
                fd: o,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: i,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: polling two descriptors we own, through an array of their length.
        unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &timeout, std::ptr::null()) };
        take_packets(o, &mut up, &mut to_inner, &mut buf);
        take_packets(i, &mut down, &mut to_outer, &mut buf);
        let now = mono_ns();
        deliver(i, &mut to_inner, now, packets);
        deliver(o, &mut to_outer, now, packets);
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
