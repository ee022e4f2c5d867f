//! Server-sent events from the built-in push server, read over a real socket the way the SSE
//! client will read them: the response head, the chunked body, the event stream.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::Duration;

use pushbench::chunked::{Dechunker, Step};
use pushbench::servers::launch::{launch_ws_servers, TargetLaunch};
use pushbench::sse::parse::Parser;
use pushbench::websocket::proto::{tag, Control};

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

fn control(tag: u8, subscriber: u32, seq: u64, len: u32) -> Vec<u8> {
    let mut out = Vec::new();
    Control {
        tag,
        subscriber,
        seq,
        intended_us: 1_000 + seq,
        sent_us: 2_000 + seq,
        len,
    }
    .write(&mut out);
    out
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
    ctl.write_all(&control(tag::STATS, 0, 0, 0)).unwrap();
    let mut head = [0u8; 5];
    ctl.read_exact(&mut head).unwrap();
    while head[0] != tag::STATS {
        ctl.read_exact(&mut head).unwrap();
    }
    let mut json = vec![0u8; u32::from_le_bytes(head[1..5].try_into().unwrap()) as usize];
    ctl.read_exact(&mut json).unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(stats["streams"], 1);
    assert_eq!(stats["pushed"], 3);
    assert_eq!(stats["not_connected"], 1);
    assert_eq!(stats["dropped"], 1);
    servers.stop();
}
