//! Webhooks and WebSockets over TLS: the built-in receiver and WebSocket server serving a
//! certificate made for the run, every handshake timed and counted (full or resumed), and a
//! probe that stops a run whose target cannot be trusted with a message naming the key to
//! change.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use common::{run_in_process, scenario, webhook, websocket};

fn tls_run(extra: &str) -> String {
    format!(
        "[workload]\nevents_per_second = 200\nsubscribers = 50\nduration = \"1s\"\n[webhook]\npool = 4\n{extra}\n"
    )
}

#[tokio::test]
async fn fresh_connections_over_tls_resume_and_every_handshake_is_timed_and_counted() {
    let (report, _dir) =
        run_in_process(&scenario(&tls_run("connection = \"fresh\"\ntls = true"))).await;
    let m = webhook(&report);
    assert_eq!((m.delivered, m.failed), (200, 0), "{:?}", m.errors);
    let tls = m.tls.as_ref().expect("a tls block");
    assert_eq!(tls.version, "TLSv1.3");
    assert!(tls.cipher.starts_with("TLS13_"), "{}", tls.cipher);
    let opened = m.connections.opened;
    assert_eq!(opened, 200, "a connection per delivery");
    assert!(
        (1..=4).contains(&m.connections.peak),
        "short-lived connections still show in the peak (pool of 4): {}",
        m.connections.peak
    );
    assert_eq!(
        tls.full + tls.resumed,
        opened,
        "one handshake per connection"
    );
    assert_eq!(m.tls_handshake_us.count, opened, "each one timed");
    assert_eq!(m.connect_us.count, opened, "the TCP connect timed apart");
    assert!(
        tls.resumed > tls.full,
        "sessions are resumed once one exists: {tls:?}"
    );

    // A provider that keeps no sessions pays the full handshake every time, and its bytes.
    let (again, _dir) = run_in_process(&scenario(&tls_run(
        "connection = \"fresh\"\ntls = { resume = false }",
    )))
    .await;
    let full = webhook(&again);
    let t = full.tls.as_ref().unwrap();
    assert_eq!((t.full, t.resumed, t.resume), (200, 0, false));
    assert!(
        full.bytes_per_event > m.bytes_per_event + 300.0,
        "a full handshake carries the certificate: {} vs {} bytes per event",
        full.bytes_per_event,
        m.bytes_per_event
    );
}

#[tokio::test]
async fn keep_alive_over_tls_handshakes_once_per_connection_and_counts_tls_bytes() {
    let (report, _dir) = run_in_process(&scenario(&tls_run("tls = true"))).await;
    let m = webhook(&report);
    assert_eq!((m.delivered, m.failed), (200, 0), "{:?}", m.errors);
    let tls = m.tls.as_ref().unwrap();
    assert_eq!(tls.full + tls.resumed, m.connections.opened);
    assert_eq!(m.connections.opened, 4, "the pool's connections only");
    let (plain, _dir) = run_in_process(&scenario(&tls_run(""))).await;
    let plain = webhook(&plain);
    assert!(plain.tls.is_none() && plain.tls_handshake_us.count == 0);
    assert!(
        m.bytes_per_event > plain.bytes_per_event,
        "records and handshakes are on the wire: {} vs {}",
        m.bytes_per_event,
        plain.bytes_per_event
    );
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn wss_run(extra: &str) -> String {
    format!(
        "[workload]\nevents_per_second = 200\nsubscribers = 40\nduration = \"1s\"\nwarmup = \"0s\"\n[websocket]\n{extra}\n"
    )
}

#[tokio::test]
async fn wss_push_handshakes_once_per_connection_and_its_records_are_on_the_wire() {
    let (report, dir) = run_in_process(&scenario(&wss_run("tls = true"))).await;
    let m = websocket(&report);
    assert_eq!((m.delivered, m.failed), (200, 0), "{:?}", m.errors);
    let tls = m.tls.as_ref().expect("a tls block");
    assert_eq!(tls.version, "TLSv1.3");
    assert_eq!(m.connections.opened, 40);
    assert_eq!(tls.full + tls.resumed, 40, "one handshake per connection");
    assert_eq!(m.tls_handshake_us.count, 40, "each one timed");
    assert!(tls.full >= 1, "the first one cannot resume: {tls:?}");
    let summary_csv = std::fs::read_to_string(dir.path().join("out/summary.csv")).unwrap();
    let mut rows = csv_rows(&summary_csv);
    let header = rows.remove(0);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(rows[0][col("tls_handshakes_full")], tls.full.to_string());
    assert_eq!(
        rows[0][col("tls_handshakes_resumed")],
        tls.resumed.to_string()
    );
    let csv = std::fs::read_to_string(dir.path().join("out/percentiles.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with("websocket,tls_handshake,") || l.contains(",tls_handshake,")),
        "{csv}"
    );

    let (plain, _dir) = run_in_process(&scenario(&wss_run(""))).await;
    let plain = websocket(&plain);
    assert!(plain.tls.is_none() && plain.tls_handshake_us.count == 0);
    assert!(
        m.bytes_per_event > plain.bytes_per_event + 20.0,
        "each event is a record (header and tag) and the handshakes count: {} vs {} bytes",
        m.bytes_per_event,
        plain.bytes_per_event
    );
}

#[tokio::test]
async fn wss_clients_resume_on_any_of_the_servers_processes() {
    // Three server processes on one port: the kernel spreads the connections over them, and a
    // ticket from one must open on the others.
    let (report, _dir) = run_in_process(&scenario(
        "[workload]\nevents_per_second = 1\nsubscribers = 90\nduration = \"1s\"\n[websocket]\nmode = \"idle\"\nconnect_rate = 300\ntls = true\n[websocket.server]\nprocesses = 3\n",
    ))
    .await;
    let m = websocket(&report);
    let tls = m.tls.as_ref().unwrap();
    assert_eq!(tls.full + tls.resumed, 90, "{tls:?}");
    assert!(
        tls.resumed >= 60,
        "most connections resume, whichever process they reach: {tls:?}"
    );
}

#[tokio::test]
async fn wss_echo_of_messages_larger_than_a_record_comes_back_whole_and_in_order() {
    // 40,000 bytes: three TLS records each way, split across reads.
    let (report, _dir) = run_in_process(&scenario(
        "[workload]\nevents_per_second = 100\nsubscribers = 4\nduration = \"1s\"\nwarmup = \"0s\"\npayload_bytes = 40000\n[websocket]\nmode = \"echo\"\ntls = true\n",
    ))
    .await;
    let m = websocket(&report);
    let ws = m.websocket.as_ref().unwrap();
    assert_eq!((m.delivered, m.failed), (100, 0), "{:?}", m.errors);
    assert_eq!((ws.gaps, ws.reordered), (0, 0));
    assert!(m.bytes_per_event > 80_000.0, "{}", m.bytes_per_event);
}

/// `pushbench serve webhook` (no signature check) with `args`; returns the child, the address
/// it listens on and the CA it says to trust.
fn serve(args: &[&str]) -> (Child, String, Option<String>) {
    serve_target(&[&["webhook", "--no-verify"], args].concat())
}

/// `pushbench serve TARGET...` on a free loopback port.
fn serve_target(args: &[&str]) -> (Child, String, Option<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .arg("serve")
        .args(args)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A self-signed server says where its CA is before it listens.
    let ca = args.contains(&"--tls-self-signed").then(|| {
        let mut line = String::new();
        BufReader::new(child.stderr.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.rsplit("trust its CA: ")
            .next()
            .unwrap()
            .trim()
            .to_string()
    });
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.rsplit("://").next().unwrap().trim().to_string();
    (child, addr, ca)
}

/// `pushbench run` of `scenario` from a file in `dir`, results in `dir/<out>`.
fn run_file(dir: &Path, scenario: &str, out: &str) -> Output {
    let file = dir.join("s.toml");
    std::fs::write(&file, scenario).unwrap();
    Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["run", file.to_str().unwrap(), "--progress", "off", "--out"])
        .arg(dir.join(out))
        .output()
        .unwrap()
}

fn run_against(dir: &Path, url: &str, tls: &str) -> Output {
    run_file(
        dir,
        &format!(
            "[workload]\nevents_per_second = 50\nduration = \"1s\"\n[webhook]\nurl = \"{url}\"\nsignature = \"none\"\npool = 2\n{tls}\n"
        ),
        &format!("out-{}", tls.len()),
    )
}

/// Without `tls.ca_file` the run stops before it starts (exit 3), saying the certificate is not
/// from a trusted CA and naming the key; with the CA it runs. Returns the `tls` line that worked.
fn needs_the_ca(run: impl Fn(&str) -> Output, ca: &str) -> String {
    let out = run("");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("not signed by a trusted CA") && err.contains("tls.ca_file"),
        "{err}"
    );
    let trusted = format!("tls = {{ ca_file = \"{ca}\" }}");
    let out = run(&trusted);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    trusted
}

fn stop(mut child: Child) {
    // SAFETY: signalling the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}

#[test]
fn an_untrusted_or_misnamed_certificate_stops_the_run_naming_the_key_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr, ca) = serve(&["--tls-self-signed"]);
    let ca = ca.expect("the CA's path");
    let url = format!("https://{addr}/hooks/{{subscriber}}");

    needs_the_ca(|tls| run_against(dir.path(), &url, tls), &ca);

    let misnamed = format!("tls = {{ ca_file = \"{ca}\", server_name = \"api.example.com\" }}");
    let out = run_against(dir.path(), &url, &misnamed);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("not valid for this host name") && err.contains("tls.server_name"),
        "{err}"
    );

    let unchecked = run_against(dir.path(), &url, "tls = { verify = false }");
    let err = String::from_utf8_lossy(&unchecked.stderr);
    assert_eq!(unchecked.status.code(), Some(0), "{err}");
    assert_eq!(
        err.matches("tls.verify = false").count(),
        1,
        "one warning: {err}"
    );
    stop(server);
}

#[test]
fn the_sink_serves_tls_too() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr, ca) = serve_target(&["sink", "--tls-self-signed"]);
    let tls = format!(
        "tls = {{ ca_file = \"{}\" }}\nconnection = \"fresh\"",
        ca.unwrap()
    );
    let out = run_against(
        dir.path(),
        &format!("https://{addr}/hooks/{{subscriber}}"),
        &tls,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(format!("out-{}/summary.json", tls.len()))).unwrap(),
    )
    .unwrap();
    let m = &summary["models"][0];
    assert_eq!(
        (m["delivered"].as_u64(), m["failed"].as_u64()),
        (Some(50), Some(0))
    );
    assert_eq!(
        m["tls"]["full"].as_u64().unwrap() + m["tls"]["resumed"].as_u64().unwrap(),
        50
    );
    stop(server);
}

#[test]
fn a_plaintext_server_on_an_https_url_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr, _) = serve(&[]);
    let out = run_against(
        dir.path(),
        &format!("https://{addr}/hooks/{{subscriber}}"),
        "",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("did not answer in TLS"), "{err}");
    stop(server);
}

#[test]
fn an_expired_certificate_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let (server, addr, _) = serve(&[
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
    ]);
    let tls = format!("tls = {{ ca_file = \"{}\" }}", cert_file.display());
    let out = run_against(
        dir.path(),
        &format!("https://{addr}/hooks/{{subscriber}}"),
        &tls,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("has expired"), "{err}");
    stop(server);
}

#[test]
fn a_missing_ca_file_is_a_scenario_error_with_its_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(
        &file,
        "[workload]\nevents_per_second = 5\nduration = \"1s\"\n[webhook]\nurl = \"https://127.0.0.1:9/hooks\"\nsignature = \"none\"\ntls = { ca_file = \"no-such-ca.pem\" }\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["validate", file.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("webhook.tls.ca_file")
            && err.contains("line 7")
            && err.contains("no such file"),
        "{err}"
    );
}

fn run_ws_against(dir: &Path, url: &str, tls: &str) -> Output {
    run_file(
        dir,
        &format!(
            "[workload]\nevents_per_second = 40\nsubscribers = 8\nduration = \"1s\"\n[websocket]\nurl = \"{url}\"\nmode = \"echo\"\n{tls}\n"
        ),
        &format!("ws-{}", tls.len()),
    )
}

#[test]
fn serve_ws_speaks_wss_and_an_untrusted_certificate_names_the_key_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr, ca) = serve_target(&["ws", "--tls-self-signed"]);
    let ca = ca.expect("the CA's path");
    let addr = addr.split_whitespace().next().unwrap().to_string();
    let url = format!("wss://{addr}/ws/{{subscriber}}");

    let trusted = needs_the_ca(|tls| run_ws_against(dir.path(), &url, tls), &ca);
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join(format!("ws-{}/summary.json", trusted.len())),
        )
        .unwrap(),
    )
    .unwrap();
    let m = &summary["models"][0];
    assert_eq!(m["model"], "websocket");
    assert_eq!(
        (m["delivered"].as_u64(), m["failed"].as_u64()),
        (Some(40), Some(0)),
        "{m}"
    );
    assert_eq!(
        m["tls"]["full"].as_u64().unwrap() + m["tls"]["resumed"].as_u64().unwrap(),
        8
    );

    // A wss:// url against a plaintext server is named as such before anything runs.
    let (plain_server, plain_addr, _) = serve_target(&["ws"]);
    let plain_addr = plain_addr.split_whitespace().next().unwrap().to_string();
    let out = run_ws_against(
        dir.path(),
        &format!("wss://{plain_addr}/ws/{{subscriber}}"),
        "",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("did not answer in TLS") && err.contains("ws://"),
        "{err}"
    );
    stop(plain_server);

    // A ws:// url against it: every connect fails, and says it met TLS.
    let plain = run_ws_against(dir.path(), &format!("ws://{addr}/ws/{{subscriber}}"), "");
    let out = String::from_utf8_lossy(&plain.stdout);
    assert!(out.contains("(tls "), "{out}");
    stop(server);
}
