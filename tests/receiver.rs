//! The built-in receiver over real sockets: what it accepts, refuses and counts.

use std::net::SocketAddr;

use pushbench::clock::real_ns;
use pushbench::record::decode_hist;
use pushbench::scenario::ReceiverConfig;
use pushbench::servers::launch::fetch_stats;
use pushbench::servers::receiver::{serve, ReceiverOptions};
use pushbench::webhook::http::Conn;
use pushbench::webhook::payload::Payload;
use pushbench::webhook::sign::{SignatureScheme, SigningKey};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn start(max_body_bytes: usize) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let opts = ReceiverOptions {
        config: ReceiverConfig {
            max_body_bytes,
            ..ReceiverConfig::default()
        },
        key: Some(SigningKey::new(SignatureScheme::Standard, SECRET).unwrap()),
        seed: 1,
        tls: None,
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, opts, async {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// A signed delivery of event `index`, with its timestamp `age_s` seconds in the past.
fn request(index: u64, age_s: u64, tamper: bool, timed: bool) -> Vec<u8> {
    let key = SigningKey::new(SignatureScheme::Standard, SECRET).unwrap();
    let mut p = Payload::new(300, 7);
    let now_us = real_ns() / 1_000;
    p.fill(index, now_us, 3);
    let mut signed = Vec::new();
    key.write_headers(&mut signed, p.id(), now_us / 1_000_000 - age_s, p.body());
    let mut body = p.body().to_vec();
    if tamper {
        let at = body.len() - 3;
        body[at] = b'y';
    }
    let mut req = format!(
        "POST /hooks/3 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n",
        body.len()
    )
    .into_bytes();
    if timed {
        req.extend_from_slice(
            format!("x-pushbench-t: {},{},1\r\n", now_us - 500, now_us).as_bytes(),
        );
    }
    req.extend_from_slice(&signed);
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(&body);
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_deduplicates_and_times_deliveries() {
    let (addr, _stop) = start(1 << 20).await;
    let mut conn = Conn::connect(addr).await.unwrap();
    let status = |r: Result<pushbench::webhook::http::Response, _>| r.unwrap().status;

    assert_eq!(
        status(conn.round_trip(&request(1, 0, false, true)).await),
        204
    );
    assert_eq!(
        status(conn.round_trip(&request(1, 0, false, false)).await),
        204,
        "a replay is acknowledged..."
    );
    assert_eq!(
        status(conn.round_trip(&request(2, 0, true, false)).await),
        401
    );
    assert_eq!(
        status(conn.round_trip(&request(3, 600, false, false)).await),
        401
    );
    assert_eq!(
        status(conn.round_trip(&request(4, 0, false, false)).await),
        204
    );

    let stats = fetch_stats(addr).unwrap();
    let c = stats.counters;
    assert_eq!(c.unique, 2);
    assert_eq!(
        c.duplicates, 1,
        "...but counted as a duplicate, not a new delivery"
    );
    assert_eq!(c.bad_signature, 1);
    assert_eq!(c.stale, 1);
    assert_eq!(c.requests, 5);
    assert_eq!(c.connections, 1);
    let timed = decode_hist(&stats.delivery[1]).unwrap();
    assert_eq!(
        timed.len(),
        1,
        "only the delivery that carried timing is timed"
    );
    assert!(
        timed.max() >= 500,
        "latency from the intended time: {}",
        timed.max()
    );
    // The histograms are handed over: a second pull starts from zero.
    assert!(decode_hist(&fetch_stats(addr).unwrap().delivery[1])
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_and_the_server_keeps_serving() {
    let (addr, _stop) = start(400).await;
    let mut conn = Conn::connect(addr).await.unwrap();
    let big = vec![b'x'; 5000];
    let mut req = format!(
        "POST /hooks/1 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        big.len()
    )
    .into_bytes();
    req.extend_from_slice(&big);
    assert_eq!(conn.round_trip(&req).await.unwrap().status, 413);

    // Without a declared length, the cap applies while reading.
    let mut chunked = Conn::connect(addr).await.unwrap();
    let mut req =
        b"POST /hooks/1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(format!("{:x}\r\n", big.len()).as_bytes());
    req.extend_from_slice(&big);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(chunked.round_trip(&req).await.unwrap().status, 413);

    let mut fresh = Conn::connect(addr).await.unwrap();
    assert_eq!(
        fresh
            .round_trip(&request(9, 0, false, false))
            .await
            .unwrap()
            .status,
        204
    );
    let c = fetch_stats(addr).unwrap().counters;
    assert_eq!((c.too_large, c.unique), (2, 1));
}
