//! Whole runs with `[network]`, as a user starts them: the built-in targets behind the emulated
//! link, the round trips it adds showing in the figures, nothing left behind; and the clear
//! stop (exit 2) where the process lacks what the link needs. The runs need CAP_NET_ADMIN
//! (root), /dev/net/tun and `ip`; without them those tests say why and pass without running.

mod common;

use common::pushbench;

use std::path::Path;
use std::process::Command;

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).unwrap()
}

fn model<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == name)
        .unwrap_or_else(|| panic!("no {name} entry"))
}

fn ms(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap() / 1000.0
}

const OVER_40MS: &str = r#"
name = "over40"
seed = 3
[workload]
events_per_second = 100
subscribers = 50
payload_bytes = 256
duration = "2s"
warmup = "500ms"
[network]
rtt = "40ms"
[webhook]
url = "builtin"
connection = "keepalive"
pool = 8
signature = "standard"
[websocket]
url = "builtin"
mode = "push"
connect_rate = 500
"#;

#[test]
fn over_a_40ms_link_a_kept_connection_pays_half_a_round_trip_and_a_connect_one() {
    if let Some(why) = pushbench::netem::missing_requirements() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), OVER_40MS).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["run", "s.toml", "--out", "r", "--progress", "off"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&dir.path().join("r"));
    for name in ["webhook", "websocket"] {
        let m = model(&s, name);
        assert_eq!(m["failed"], 0, "{name}");
        // One way across the link is 20 ms; the loopback beneath adds well under 2 ms.
        let p50 = ms(&m["latency_us"]["p50"]);
        assert!((20.0..22.0).contains(&p50), "{name} latency p50 {p50} ms");
        let net = &m["network"];
        assert_eq!(net["rtt_us"], 40_000, "{name}");
        assert!(
            net["up"]["packets"].as_u64().unwrap() > 100,
            "{name}: {net}"
        );
        assert!(
            net["down"]["packets"].as_u64().unwrap() > 100,
            "{name}: {net}"
        );
        assert!(m["resources"]["link"]["cpu_s"].as_f64().is_some(), "{name}");
    }
    // A TCP connect is one round trip: SYN across, SYN-ACK back.
    let connect = ms(&model(&s, "webhook")["connect_us"]["p50"]);
    assert!((40.0..44.0).contains(&connect), "connect p50 {connect} ms");
    assert!(text.contains("network (emulated link)"), "{text}");
    // Every namespace and device of this run is gone.
    let left = |args: &[&str]| {
        let o = Command::new("ip").args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).contains(&format!("pb-{pid}-"))
    };
    assert!(!left(&["netns", "list"]), "a namespace of the run is left");
    assert!(
        !left(&["-o", "link", "show"]),
        "a device of the run is left"
    );
}

#[test]
fn without_what_the_link_needs_a_network_run_stops_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.toml"), OVER_40MS).unwrap();
    let args = ["run", "s.toml", "--out", "r", "--progress", "off"];
    // As root, the same binary with CAP_NET_ADMIN and CAP_SYS_ADMIN taken away.
    let out = if pushbench::netem::missing_requirements().is_none() {
        let Ok(o) = Command::new("setpriv")
            .args(["--bounding-set=-net_admin,-sys_admin", "--"])
            .arg(env!("CARGO_BIN_EXE_pushbench"))
            .args(args)
            .current_dir(dir.path())
            .output()
        else {
            eprintln!("skipped: root, and no setpriv to drop the capabilities with");
            return;
        };
        o
    } else {
        pushbench(&args, dir.path())
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("[network]") && err.contains("CAP_NET_ADMIN"),
        "{err}"
    );
    assert!(err.contains("remove [network]"), "{err}");
    assert!(!dir.path().join("r").exists(), "nothing may run");
}
