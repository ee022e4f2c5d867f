//! The emulated link over real TCP: a listener in the link's namespace, a connection from
//! outside, the round trips the link adds. Needs CAP_NET_ADMIN (root), /dev/net/tun and `ip`;
//! without them the test says why and passes without running.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use pushbench::netem::link::LinkSpec;
use pushbench::netem::tun::EmulatedLink;

fn why_not() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (CAP_NET_ADMIN needed)".into());
    }
    if std::fs::metadata("/dev/net/tun").is_err() {
        return Some("no /dev/net/tun".into());
    }
    if std::process::Command::new("ip").arg("-V").output().is_err() {
        return Some("no `ip` (iproute2)".into());
    }
    None
}

#[test]
fn the_link_adds_its_round_trip_to_real_tcp_and_cleans_up() {
    if let Some(reason) = why_not() {
        eprintln!("skipped: {reason}");
        return;
    }
    let ms = 1_000_000;
    let one_way = LinkSpec {
        delay_ns: 20 * ms,
        ..LinkSpec::default()
    };
    // A namespace a crashed run left (its process long gone) is removed by the next start.
    let stale = "pb-4194303-0";
    let made = std::process::Command::new("ip")
        .args(["netns", "add", stale])
        .status();
    let link = EmulatedLink::start(one_way, one_way).expect("the link starts");
    if made.is_ok_and(|s| s.success()) {
        let list = std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&list.stdout).contains(stale),
            "leftover removed"
        );
    }
    let ns = link.ns_path();
    let target = link.addrs.target;
    // An echo server inside the namespace, on the target address.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        // SAFETY: setns on a namespace file held open; it affects this thread only.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let l = TcpListener::bind(SocketAddr::from((target, 0))).unwrap();
        tx.send(l.local_addr().unwrap()).unwrap();
        for s in l.incoming().take(3) {
            let mut s = s.unwrap();
            let mut b = [0u8; 64];
            let n = s.read(&mut b).unwrap();
            s.write_all(&b[..n]).unwrap();
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    for _ in 0..3 {
        let t0 = Instant::now();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        let connect = t0.elapsed();
        let t1 = Instant::now();
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        let echo = t1.elapsed();
        assert_eq!(&b, b"ping");
        // A handshake is one round trip (20 ms each way), the echo another: never less.
        assert!(connect >= Duration::from_millis(39), "connect {connect:?}");
        assert!(echo >= Duration::from_millis(39), "echo {echo:?}");
        assert!(connect < Duration::from_secs(1) && echo < Duration::from_secs(1));
    }
    let ns_name = link.ns.clone();
    let figures = link.finish();
    // Three connections: a handshake, a request and its answer, each way.
    assert!(figures.written >= 12, "{figures:?}");
    assert!(figures.up.packets >= 6 && figures.down.packets >= 6);
    // The pump wakes when a packet is due, not a scheduler tick later.
    let late = figures.late_us.value_at_quantile(0.5);
    assert!(late < 1_000, "the pump's own delay p50 {late} us");
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&ns_name),
        "the namespace is gone"
    );
    let links = std::process::Command::new("ip")
        .args(["link", "show"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains(&ns_name),
        "the devices (TUN and the control veth) are gone"
    );
}
