//! The built-in servers against hostile clients, over real sockets: each bad request is answered
//! as HTTP or RFC 6455 says, counted, and never stops the server serving the next, well-behaved
//! client.

use std::net::SocketAddr;
use std::time::Duration;

use pushbench::clock::real_ns;
use pushbench::record::results::{ReceiverCounters, ServerStats};
use pushbench::scenario::ReceiverConfig;
use pushbench::servers::guard::ConnLimits;
use pushbench::servers::launch::fetch_stats;
use pushbench::servers::receiver::{self, ReceiverOptions};
use pushbench::servers::{sink, ws_server};
use pushbench::webhook::http::Conn;
use pushbench::webhook::payload::Payload;
use pushbench::webhook::sign::{SignatureScheme, SigningKey};
use pushbench::websocket::frame::{self, OpCode};
use pushbench::websocket::proto::{tag, Control, CONTROL_RECORD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Short enough that a test waits little, long enough for a loaded machine to send a head.
fn limits() -> ConnLimits {
    ConnLimits {
        head_timeout: Duration::from_millis(400),
        body_timeout: Duration::from_millis(400),
        max_head_bytes: 16 * 1024,
    }
}

async fn start_receiver(scheme: SignatureScheme) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ReceiverOptions {
        config: ReceiverConfig {
            max_body_bytes: 4096,
            ..ReceiverConfig::default()
        },
        key: Some(SigningKey::new(scheme, SECRET).unwrap()),
        seed: 1,
        tls: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(receiver::serve_with_limits(
        listener,
        opts,
        limits(),
        async {
            let _ = rx.await;
        },
    ));
    (addr, tx)
}

/// A correctly signed delivery of event `index`.
fn delivery(index: u64) -> Vec<u8> {
    let key = SigningKey::new(SignatureScheme::Standard, SECRET).unwrap();
    let mut p = Payload::new(300, 7);
    let now_us = real_ns() / 1_000;
    p.fill(index, now_us, 3);
    let mut req = format!(
        "POST /hooks/3 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n",
        p.body().len()
    )
    .into_bytes();
    key.write_headers(&mut req, p.id(), now_us / 1_000_000, p.body());
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(p.body());
    req
}

/// Sends `bytes` on a fresh connection; the status of the answer, `None` if it closed without one.
async fn answer_to(addr: SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before taking all of an oversized request.
    let _ = s.write_all(bytes).await;
    status_of(&mut s).await
}

/// Reads until a status line (or the end); gives up after 10 s so a hung server fails the test.
async fn status_of(s: &mut TcpStream) -> Option<u16> {
    let mut got = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while !got.windows(2).any(|w| w == b"\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server answers or closes");
    let line = String::from_utf8_lossy(&got);
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// True when the server closes the connection (within 10 s) without sending anything more.
async fn closed_silently(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Sends `head` one byte per `every` until the server closes; false if it never does.
async fn trickle_until_closed(s: &mut TcpStream, head: &[u8], every: Duration) -> bool {
    for &b in head.iter().cycle().take(200) {
        if s.write_all(&[b]).await.is_err() {
            return true;
        }
        let mut buf = [0u8; 64];
        if let Ok(r) = tokio::time::timeout(every, s.read(&mut buf)).await {
            return matches!(r, Ok(0) | Err(_));
        }
    }
    false
}

async fn served(addr: SocketAddr, index: u64) {
    let mut conn = Conn::connect(addr).await.unwrap();
    let status = conn.round_trip(&delivery(index)).await.unwrap().status;
    assert_eq!(
        status, 204,
        "a well-behaved client is served after a hostile one"
    );
}

async fn counters(addr: SocketAddr) -> ReceiverCounters {
    tokio::task::spawn_blocking(move || fetch_stats(addr).unwrap().counters)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receiver_answers_counts_and_survives_each_hostile_request() {
    let (addr, _stop) = start_receiver(SignatureScheme::Standard).await;
    let mut next = 1;
    let mut good = || {
        next += 1;
        next
    };
    served(addr, good()).await;

    // Not HTTP at all.
    assert_eq!(
        answer_to(addr, b"\x16\x03\x01 hello\r\n\r\n").await,
        Some(400)
    );
    served(addr, good()).await;
    assert_eq!(
        answer_to(addr, b"POST /hooks/1 HTTP/1.1\r\nno colon here\r\n\r\n").await,
        Some(400)
    );
    served(addr, good()).await;

    // A head over the cap (16 KiB here).
    let mut big = b"POST /hooks/1 HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_vec();
    big.resize(64 * 1024, b'a');
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(answer_to(addr, &big).await, Some(431));
    served(addr, good()).await;

    // A body over the cap, declared and undeclared.
    let declared = b"POST /hooks/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n";
    assert_eq!(answer_to(addr, declared).await, Some(413));
    let mut chunked =
        b"POST /hooks/1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2000\r\n".to_vec();
    chunked.resize(chunked.len() + 0x2000, b'x');
    assert_eq!(answer_to(addr, &chunked).await, Some(413));
    served(addr, good()).await;

    // Chunked framing that is not hex.
    let bad_chunk = b"POST /hooks/1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n";
    assert_eq!(answer_to(addr, bad_chunk).await, Some(400));
    served(addr, good()).await;

    // Slowloris: a head trickled a byte at a time is cut off at the deadline...
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let head = b"POST /hooks/1 HTTP/1.1\r\nHost: t\r\nX-Slow: 1\r\n";
    assert!(trickle_until_closed(&mut slow, head, Duration::from_millis(50)).await);
    served(addr, good()).await;
    // ...and so is a client that connects and sends nothing.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_silently(&mut silent).await);
    served(addr, good()).await;

    // A body that stops coming gets 408.
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"POST /hooks/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 300\r\n\r\n{\"id\":")
        .await
        .unwrap();
    assert_eq!(status_of(&mut stalled).await, Some(408));
    served(addr, good()).await;

    let c = counters(addr).await;
    assert_eq!(c.malformed, 3, "{c:?}");
    assert_eq!(c.headers_too_large, 1, "{c:?}");
    assert_eq!(c.too_large, 2, "{c:?}");
    assert_eq!(c.timeouts, 3, "{c:?}");
    assert_eq!(
        c.unique, 9,
        "every well-behaved delivery counted once: {c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_hold_up_others_and_idle_keepalive_connections_stay_open() {
    let (addr, _stop) = start_receiver(SignatureScheme::Standard).await;
    // A pooled connection that delivered once and then waits longer than the head deadline...
    let mut pooled = Conn::connect(addr).await.unwrap();
    assert_eq!(pooled.round_trip(&delivery(1)).await.unwrap().status, 204);

    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /hooks/1 HTTP/1.1\r\nHost: t\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // Fifty half-sent heads do not stop a well-behaved client from being served now.
    served(addr, 2).await;
    for s in &mut slow {
        assert!(closed_silently(s).await, "each slow head is cut off");
    }
    tokio::time::sleep(limits().head_timeout * 2).await;
    // ...is still usable: only a head that has started is timed.
    assert_eq!(pooled.round_trip(&delivery(3)).await.unwrap().status, 204);
    let c = counters(addr).await;
    assert_eq!((c.timeouts, c.unique, c.connections), (50, 3, 2), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_and_absurd_signatures_are_refused_and_counted() {
    let (addr, _stop) = start_receiver(SignatureScheme::Stripe).await;
    let body = br#"{"id":"evt_1","type":"t"}"#;
    let now_s = real_ns() / 1_000_000_000;
    let signed = |ts: u64| {
        let key = SigningKey::new(SignatureScheme::Stripe, SECRET).unwrap();
        let mut h = Vec::new();
        key.write_headers(&mut h, b"evt_1", ts, body);
        h
    };
    let post = |headers: &[u8]| {
        let mut r = format!(
            "POST /hooks/1 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(headers);
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(body);
        r
    };
    assert_eq!(answer_to(addr, &post(&signed(now_s))).await, Some(204));
    // The same event again: acknowledged, counted as a duplicate.
    assert_eq!(answer_to(addr, &post(&signed(now_s))).await, Some(204));
    // Signed an hour ago: stale.
    assert_eq!(
        answer_to(addr, &post(&signed(now_s - 3600))).await,
        Some(401)
    );
    // A signature from another key.
    let forged = format!("Stripe-Signature: t={now_s},v1={}\r\n", "ab".repeat(32));
    assert_eq!(answer_to(addr, &post(forged.as_bytes())).await, Some(401));
    // The largest timestamp there is: refused, not an overflow that drops the connection.
    let absurd = format!(
        "Stripe-Signature: t={},v1={}\r\n",
        u64::MAX,
        "ab".repeat(32)
    );
    assert_eq!(answer_to(addr, &post(absurd.as_bytes())).await, Some(401));
    assert_eq!(
        answer_to(addr, &post(b"Stripe-Signature: v1=zz\r\n")).await,
        Some(401)
    );
    let c = counters(addr).await;
    assert_eq!((c.unique, c.duplicates, c.stale), (1, 1, 1), "{c:?}");
    assert_eq!(c.bad_signature, 3, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_refuses_what_would_hold_it_and_keeps_answering() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(sink::serve_with_limits(listener, limits(), None, async {
        let _ = rx.await;
    }));
    let ok = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi";
    assert_eq!(answer_to(addr, ok).await, Some(204));
    assert_eq!(answer_to(addr, b"NOT HTTP\r\n\r\n").await, Some(400));
    let mut big = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(64 * 1024, b'a');
    assert_eq!(answer_to(addr, &big).await, Some(431));
    let huge = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999\r\n\r\n";
    assert_eq!(answer_to(addr, huge).await, Some(413));
    let stalled = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab";
    assert_eq!(answer_to(addr, stalled).await, Some(408));
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_silently(&mut silent).await);
    assert_eq!(answer_to(addr, ok).await, Some(204));
}

/// The WebSocket server on its own thread (it runs on a `LocalSet`); returns its port and
/// control port.
fn start_ws(max_message_bytes: usize) -> (SocketAddr, SocketAddr) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send((
                listener.local_addr().unwrap(),
                control.local_addr().unwrap(),
            ))
            .unwrap();
            let opts = ws_server::WsServerOptions {
                max_message_bytes,
                handshake: limits(),
                ..Default::default()
            };
            // Runs until the test process ends.
            let _ = ws_server::serve(listener, control, opts, std::future::pending()).await;
        });
    });
    rx.recv().unwrap()
}

const HANDSHAKE: &[u8] = b"GET /ws/7 HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A connection past the upgrade.
async fn ws_connect(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(HANDSHAKE).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).await.unwrap(), 1, "handshake answered");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// A client frame: masked unless `mask` is false; `first` is the raw first byte (FIN, RSV, op).
fn raw_frame(first: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let key = [0x12, 0x34, 0x56, 0x78];
    frame::encode(&mut out, OpCode::Binary, payload, mask.then_some(key));
    out[0] = first;
    out
}

/// Reads server frames until a close (10 s at most); returns its code.
async fn close_code_from(s: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            while let Ok(Some(h)) = frame::parse(&buf, 1 << 20) {
                if buf.len() < h.frame_len() {
                    break;
                }
                if h.opcode == OpCode::Close {
                    return Some(frame::close_code(&buf[h.payload_at..h.frame_len()]));
                }
                buf.drain(..h.frame_len());
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server closes")
}

/// The whole echo of one message sent as `frames`, reassembled, and whether it was text.
async fn echo_of(s: &mut TcpStream, frames: &[u8]) -> (bool, Vec<u8>) {
    s.write_all(frames).await.unwrap();
    let (mut buf, mut message, mut text) = (Vec::new(), Vec::new(), None);
    let mut chunk = [0u8; 4096];
    loop {
        while let Ok(Some(h)) = frame::parse(&buf, 1 << 20) {
            if buf.len() < h.frame_len() {
                break;
            }
            if h.opcode.is_control() {
                buf.drain(..h.frame_len());
                continue;
            }
            text.get_or_insert(h.opcode == OpCode::Text);
            message.extend_from_slice(&buf[h.payload_at..h.frame_len()]);
            buf.drain(..h.frame_len());
            if h.fin {
                return (text.unwrap(), message);
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .expect("echoed")
            .unwrap();
        assert!(n > 0, "closed instead of echoing");
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn ws_served(addr: SocketAddr) {
    let mut s = ws_connect(addr).await;
    let (text, echo) = echo_of(&mut s, &raw_frame(0x82, b"ping?", true)).await;
    assert_eq!(
        (text, echo.as_slice()),
        (false, &b"ping?"[..]),
        "served after a hostile client"
    );
}

/// Asks the server's control port for its counters.
async fn ws_stats(control: &mut TcpStream) -> ServerStats {
    let mut record = Vec::new();
    Control {
        tag: tag::STATS,
        subscriber: 0,
        seq: 0,
        intended_us: 0,
        sent_us: 0,
        len: 0,
    }
    .write(&mut record);
    assert_eq!(record.len(), CONTROL_RECORD);
    control.write_all(&record).await.unwrap();
    loop {
        // Hold and release records (5 bytes) come on the same stream.
        let t = control.read_u8().await.unwrap();
        if t == tag::STATS {
            let len = control.read_u32_le().await.unwrap() as usize;
            let mut json = vec![0u8; len];
            control.read_exact(&mut json).await.unwrap();
            return serde_json::from_slice(&json).unwrap();
        }
        control.read_u32_le().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_server_closes_each_protocol_violation_with_its_code() {
    let (addr, control_addr) = start_ws(1024);
    let mut control = TcpStream::connect(control_addr).await.unwrap();
    ws_served(addr).await;

    let close = |code: u16, reason: &[u8]| {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason);
        raw_frame(0x88, &p, true)
    };
    let mut fragmented_then_new = raw_frame(0x02, b"part", true);
    fragmented_then_new.extend(raw_frame(0x82, b"new", true));
    let mut text_cut_badly = raw_frame(0x01, b"caf\xc3", true);
    text_cut_badly.extend(raw_frame(0x80, b"(", true));
    let mut too_long_in_total = raw_frame(0x02, &[0; 600], true);
    too_long_in_total.extend(raw_frame(0x80, &[0; 600], true));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("opcode 3", raw_frame(0x83, b"x", true), 1002),
        ("unmasked", raw_frame(0x82, b"x", false), 1002),
        (
            "RSV1 without an extension",
            raw_frame(0xc2, b"x", true),
            1002,
        ),
        ("fragmented ping", raw_frame(0x09, b"x", true), 1002),
        (
            "ping over 125 bytes",
            raw_frame(0x89, &[0; 126], true),
            1002,
        ),
        ("continuation of nothing", raw_frame(0x80, b"x", true), 1002),
        (
            "new message inside a fragmented one",
            fragmented_then_new,
            1002,
        ),
        ("close code 999", close(999, b""), 1002),
        ("close code 1005 on the wire", close(1005, b""), 1002),
        ("close code 5000", close(5000, b""), 1002),
        ("one-byte close", raw_frame(0x88, &[3], true), 1002),
        ("text not UTF-8", raw_frame(0x81, b"\xff\xfe", true), 1007),
        ("text cut mid-character", text_cut_badly, 1007),
        ("close reason not UTF-8", close(1000, b"\xc3("), 1007),
        (
            "one frame over the cap",
            raw_frame(0x82, &[0; 2000], true),
            1009,
        ),
        ("fragments over the cap in total", too_long_in_total, 1009),
    ];
    for (what, bytes, code) in &cases {
        let mut s = ws_connect(addr).await;
        s.write_all(bytes).await.unwrap();
        assert_eq!(close_code_from(&mut s).await, Some(*code), "{what}");
        ws_served(addr).await;
    }

    // What is allowed still works: a close is echoed, fragments come back as fragments.
    let mut s = ws_connect(addr).await;
    let mut frames = raw_frame(0x01, b"caf\xc3", true);
    frames.extend(raw_frame(0x89, b"mid-message ping", true));
    frames.extend(raw_frame(0x80, b"\xa9 ok", true));
    let echoed = echo_of(&mut s, &frames).await;
    assert_eq!(echoed, (true, "café ok".as_bytes().to_vec()));
    s.write_all(&close(4000, b"bye")).await.unwrap();
    assert_eq!(close_code_from(&mut s).await, Some(4000));

    let stats = ws_stats(&mut control).await;
    assert_eq!(
        (stats.bad_frames, stats.invalid_utf8, stats.oversized),
        (11, 3, 2),
        "{stats:?}"
    );
    assert_eq!(stats.protocol_errors, 16, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_handshake_refuses_bad_slow_and_oversized_requests() {
    let (addr, control_addr) = start_ws(1024);
    let mut control = TcpStream::connect(control_addr).await.unwrap();
    assert_eq!(
        answer_to(addr, b"\x00\x01\x02garbage\r\n\r\n").await,
        Some(400)
    );
    ws_served(addr).await;
    let plain = b"GET /ws/1 HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_eq!(answer_to(addr, plain).await, Some(426));
    ws_served(addr).await;
    let mut big = b"GET /ws/1 HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(64 * 1024, b'a');
    assert_eq!(answer_to(addr, &big).await, Some(431));
    ws_served(addr).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    assert!(trickle_until_closed(&mut slow, HANDSHAKE, Duration::from_millis(50)).await);
    ws_served(addr).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    assert!(closed_silently(&mut silent).await);
    ws_served(addr).await;

    let stats = ws_stats(&mut control).await;
    assert_eq!((stats.malformed, stats.timeouts), (3, 2), "{stats:?}");
    assert_eq!(stats.upgrades, 5, "{stats:?}");
}
