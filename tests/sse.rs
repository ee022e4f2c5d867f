//! Server-sent events from the built-in push server, read over a real socket the way the SSE
//! client will read them: the response head, the chunked body, the event stream.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::Duration;

mod common;

use common::{control, run_in_process, scenario};
use pushbench::chunked::{Dechunker, Step};
use pushbench::servers::launch::{launch_ws_servers, TargetLaunch};
use pushbench::sse::parse::Parser;
use pushbench::websocket::proto::tag;

/// Reads 5-byte server -> harness records until one with `want` for `subscriber` arrives.
fn await_record(control: &mut TcpStream, want: u8, subscriber: u32) {
    let mut rec = [0u8; 5];
    loop {
        control.read_exact(&mut rec).unwrap();
        if rec[0] == want && u32::from_le_bytes(rec[1..5].try_into().unwrap()) == subscriber {
            return;
        }
    }
}

/// The stream's events (id, data) until `n` arrived or the body ended; and whether it ended.
fn read_events(
    stream: &mut TcpStream,
    head_done: &mut bool,
    buf: &mut Vec<u8>,
    dechunk: &mut Dechunker,
    parser: &mut Parser,
    n: usize,
) -> (Vec<(String, String)>, bool) {
    let mut events = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if !*head_done {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(len) = resp.parse(buf).unwrap() {
                assert_eq!(resp.code, Some(200));
                let header = |name: &str| {
                    resp.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).to_string())
                };
                assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
                assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
                assert_eq!(header("transfer-encoding").as_deref(), Some("chunked"));
                buf.drain(..len);
                *head_done = true;
            }
        }
        if *head_done && !buf.is_empty() {
            let mut body = Vec::new();
            let step = dechunk.feed(buf, |d| body.extend_from_slice(d)).unwrap();
            buf.clear();
            parser
                .feed(&body, |e| {
                    events.push((e.id.to_string(), e.data.to_string()))
                })
                .unwrap();
            if matches!(step, Step::Done { .. }) {
                return (events, true);
            }
        }
        if events.len() >= n {
            return (events, false);
        }
        let got = stream.read(&mut chunk).unwrap();
        assert!(got > 0, "the server closed the connection mid-stream");
        buf.extend_from_slice(&chunk[..got]);
    }
}

#[test]
fn published_events_reach_the_subscribers_stream_and_a_drop_ends_it() {
    let servers = launch_ws_servers(
        &TargetLaunch::InProcess,
        1,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        None,
        None,
        None,
    )
    .unwrap();
    let mut ctl = TcpStream::connect(servers.controls[0]).unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut stream = TcpStream::connect(servers.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /events/5 HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .unwrap();
    await_record(&mut ctl, tag::HOLD, 5);

    for seq in 0..3 {
        ctl.write_all(&control(tag::PUBLISH, 5, seq, 100)).unwrap();
    }
    // An event for a subscriber nobody holds is not sent anywhere.
    ctl.write_all(&control(tag::PUBLISH, 6, 0, 100)).unwrap();
    let (mut head_done, mut buf) = (false, Vec::new());
    let (mut dechunk, mut parser) = (Dechunker::new(), Parser::new(1 << 20));
    let (events, ended) = read_events(
        &mut stream,
        &mut head_done,
        &mut buf,
        &mut dechunk,
        &mut parser,
        3,
    );
    assert!(!ended);
    assert_eq!(events.len(), 3, "{events:?}");
    for (seq, (id, data)) in events.iter().enumerate() {
        assert_eq!(id, &seq.to_string());
        assert_eq!(data.len(), 100);
        let e = pushbench::sse::event::read(data).unwrap();
        assert_eq!(
            (e.seq, e.intended_us, e.sent_us, e.subscriber),
            (seq as u64, 1_000 + seq as u64, 2_000 + seq as u64, 5)
        );
    }

    // A drop with a close code finishes the response: the client sees the body end.
    ctl.write_all(&control(tag::DROP, 0, 1001, 1000)).unwrap();
    let (rest, ended) = read_events(
        &mut stream,
        &mut head_done,
        &mut buf,
        &mut dechunk,
        &mut parser,
        usize::MAX,
    );
    assert!(ended && rest.is_empty(), "{rest:?}");
    await_record(&mut ctl, tag::RELEASE, 5);
    assert_eq!(
        parser.last_id(),
        "2",
        "what a reconnect sends as Last-Event-ID"
    );

    // Counters over the same control connection.
    let stats = common::server_stats(&mut ctl);
    assert_eq!(stats["streams"], 1);
    assert_eq!(stats["pushed"], 3);
    assert_eq!(stats["not_connected"], 1);
    assert_eq!(stats["dropped"], 1);
    servers.stop();
}

fn sse(report: &pushbench::run::RunReport) -> &pushbench::record::results::ModelSummary {
    common::model(report, "sse")
}

#[tokio::test]
async fn the_sse_model_delivers_every_event_to_its_subscribers_stream_in_order() {
    let (report, dir) = run_in_process(&scenario(
        "[workload]\nevents_per_second = 200\nsubscribers = 40\nduration = \"1s\"\nwarmup = \"0s\"\n[sse]\n",
    ))
    .await;
    let m = sse(&report);
    assert_eq!(
        (m.events, m.delivered, m.failed),
        (200, 200, 0),
        "{:?}",
        m.errors
    );
    assert_eq!(m.latency_source, "client (event parsed)");
    assert_eq!(m.connections.opened, 40);
    assert!(m.websocket.is_none(), "its figures are under sse");
    let s = m.sse.as_ref().unwrap();
    assert_eq!((s.gaps, s.reordered), (0, 0));
    assert_eq!(s.server.as_ref().unwrap().streams, 40);
    assert!(m.latency_us.p50 > 0 && m.latency_us.p99 < 1_000_000);
    // Its own .hlog and rows in the CSVs.
    assert!(dir.path().join("out/sse.hlog").is_file());
    let csv = std::fs::read_to_string(dir.path().join("out/summary.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("sse,")), "{csv}");
}

#[tokio::test]
async fn streams_the_server_ends_reconnect_and_are_counted() {
    let (report, _dir) = run_in_process(&scenario(
        "[workload]\nevents_per_second = 100\nsubscribers = 20\nduration = \"3s\"\nwarmup = \"0s\"\n[sse]\nreconnect = { initial = \"400ms\", max = \"400ms\", jitter = \"none\" }\n[sse.server]\ndrop = { at = \"1s\", code = 1000 }\n",
    ))
    .await;
    let m = sse(&report);
    let s = m.sse.as_ref().unwrap();
    assert_eq!(s.server_closes, 20, "every stream finished once");
    assert_eq!(m.connections.reconnects, 20, "and came back");
    assert_eq!(m.connections.opened, 40);
    assert_eq!(s.down_at_end, 0);
    // Events published while a stream was down (400 ms each: about 40 of them) come after
    // the reconnect's Last-Event-ID, replayed from the publisher's backlog: none lost.
    assert!(s.replayed >= 20, "{s:?}");
    assert_eq!((m.delivered, m.failed, s.gaps), (m.events, 0, 0), "{s:?}");
}

/// A server that answers every request with `body` as an event stream, then holds the
/// connection for `hold` and closes it.
async fn broken_stream_server(body: &'static [u8], hold: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
                    .await;
                let _ = s.write_all(body).await;
                tokio::time::sleep(hold).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_malformed_stream_is_counted_and_dropped_never_a_crash() {
    let mut long_line = b"data: ".to_vec();
    long_line.resize(1 << 20, b'x');
    let long_line: &'static [u8] = Box::leak(long_line.into_boxed_slice());
    // Held open: the client must be the one to give up on it (a bad retry, invalid UTF-8, a
    // 1 MiB line); or closed at once inside an event that no blank line ended.
    let held = Duration::from_secs(5);
    for (body, hold) in [
        (&b"retry: soon\n\n"[..], held),
        (b"data: \xC3\x28\n\n", held),
        (long_line, held),
        (b"id: 1\ndata: never ended", Duration::ZERO),
    ] {
        let addr = broken_stream_server(body, hold).await;
        let (report, _dir) = run_in_process(&scenario(&format!(
            "[workload]\nevents_per_second = 1\nsubscribers = 2\nduration = \"1s\"\nwarmup = \"0s\"\n[sse]\nurl = \"http://{addr}/events/{{subscriber}}\"\nmode = \"idle\"\nreconnect = {{ initial = \"100ms\", max = \"100ms\", jitter = \"none\" }}\n"
        )))
        .await;
        let m = sse(&report);
        let bad = m.errors.get("bad_response").copied().unwrap_or(0);
        assert!(
            bad >= 4,
            "each stream counted as malformed, again and again: {:?}",
            m.errors
        );
        assert!(m.connections.reconnects >= 2, "{:?}", m.connections);
    }
}

#[tokio::test]
async fn a_servers_retry_is_a_floor_under_the_reconnect_backoff() {
    // Each stream says "retry: 1500" and ends at once; the backoff alone would reconnect
    // every 50 ms.
    let addr = broken_stream_server(b"retry: 1500\n\n", Duration::ZERO).await;
    let (report, _dir) = run_in_process(&scenario(&format!(
        "[workload]\nevents_per_second = 1\nsubscribers = 2\nduration = \"2s\"\nwarmup = \"0s\"\n[sse]\nurl = \"http://{addr}/events/{{subscriber}}\"\nmode = \"idle\"\ndrain = \"0s\"\nreconnect = {{ initial = \"50ms\", max = \"50ms\", jitter = \"none\" }}\n"
    )))
    .await;
    let m = sse(&report);
    // About 3.5 s from the first connect to the end: at most three connects each.
    assert!(
        (2..=6).contains(&m.connections.opened),
        "{} streams opened",
        m.connections.opened
    );
}
