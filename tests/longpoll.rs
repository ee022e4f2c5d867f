//! Long polling: the built-in push server's `/poll/{subscriber}` over a real socket, and the
//! longpoll model end to end (keep-alive and fresh connections, a drop that loses the
//! server's mailboxes, servers that answer with garbage).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

mod common;

use common::{control, run_in_process, scenario};
use pushbench::record::results::ModelSummary;
use pushbench::servers::launch::{launch_ws_servers, TargetLaunch};
use pushbench::websocket::proto::tag;

/// Sends one poll and reads its whole answer (Content-Length framed): status and JSON body.
fn poll(stream: &mut TcpStream, path: &str) -> (u16, serde_json::Value) {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the answer");
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = resp.parse(&buf).unwrap() {
            let length: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .expect("answers carry a length");
            if buf.len() >= len + length {
                let code = resp.code.unwrap();
                return (
                    code,
                    serde_json::from_slice(&buf[len..len + length]).unwrap(),
                );
            }
        }
    }
}

#[test]
fn a_poll_is_answered_with_what_came_after_its_cursor_or_with_nothing_when_the_hold_ends() {
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

    // The first poll of a subscriber tells the harness to route its events here, from the
    // start (no cursor yet); events published meanwhile answer it.
    let publisher = std::thread::spawn({
        let mut ctl = ctl.try_clone().unwrap();
        move || {
            let mut rec = [0u8; 13];
            ctl.read_exact(&mut rec).unwrap();
            assert_eq!(rec[0], tag::RESUME);
            assert_eq!(u32::from_le_bytes(rec[1..5].try_into().unwrap()), 7);
            assert_eq!(u64::from_le_bytes(rec[5..13].try_into().unwrap()), 0);
            let mut out = Vec::new();
            for seq in 0..3 {
                out.extend(control(tag::PUBLISH, 7, seq, 200));
            }
            ctl.write_all(&out).unwrap();
        }
    });
    let (status, answer) = poll(&mut stream, "/poll/7?cursor=&timeout_ms=5000");
    publisher.join().unwrap();
    assert_eq!(status, 200);
    let events = answer["events"].as_array().unwrap();
    assert!(!events.is_empty());
    // However the three were batched, the next poll from the answer's cursor gets the rest.
    let mut seen: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    while seen.len() < 3 {
        let cursor = seen.last().unwrap();
        let (_, more) = poll(
            &mut stream,
            &format!("/poll/7?cursor={cursor}&timeout_ms=5000"),
        );
        seen.extend(
            more["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_u64().unwrap()),
        );
    }
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(events[0]["intended_us"], 1_000);
    assert_eq!(events[0]["sent_us"], 2_000);

    // A poll whose answer was lost asks again with the old cursor: the same events again.
    let (_, again) = poll(&mut stream, "/poll/7?cursor=0&timeout_ms=5000");
    let again: Vec<u64> = again["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(again, [1, 2]);

    // Caught up: held for the hold, then answered empty with the cursor unchanged.
    let t0 = Instant::now();
    let (status, empty) = poll(&mut stream, "/poll/7?cursor=2&timeout_ms=300");
    let held = t0.elapsed();
    assert_eq!(status, 200);
    assert_eq!(empty, serde_json::json!({"cursor": 2, "events": []}));
    assert!(held >= Duration::from_millis(290), "held {held:?}");

    // Counters over the control connection.
    let stats = common::server_stats(&mut ctl);
    assert_eq!(stats["pushed"], 3);
    assert_eq!(stats["empty_polls"], 1);
    assert!(stats["polls"].as_u64().unwrap() >= 3);
    servers.stop();
}

fn longpoll(report: &pushbench::run::RunReport) -> &ModelSummary {
    common::model(report, "longpoll")
}

#[tokio::test]
async fn the_longpoll_model_delivers_every_event_and_counts_its_polls() {
    let (report, dir) = run_in_process(&scenario(
        "[workload]\nevents_per_second = 200\nsubscribers = 40\nduration = \"2s\"\nwarmup = \"0s\"\n[longpoll]\nhold = \"1s\"\n",
    ))
    .await;
    let m = longpoll(&report);
    assert_eq!(
        (m.events, m.delivered, m.failed),
        (400, 400, 0),
        "{:?}",
        m.errors
    );
    assert_eq!(m.latency_source, "client (answer read)");
    assert!(m.websocket.is_none(), "its figures are under longpoll");
    let lp = m.longpoll.as_ref().unwrap();
    assert_eq!((lp.gaps, lp.reordered), (0, 0));
    let p = lp.polling.as_ref().unwrap();
    assert_eq!(p.connection, "keepalive");
    // One poll per answer: every event came in one, and the holds that ran out came back
    // empty (each subscriber waits 200 ms between its events, under the 1 s hold).
    assert!(p.polls >= 400 / 2, "{p:?}");
    assert!(p.polls_per_event > 0.4 && p.polls_per_event < 1.6, "{p:?}");
    assert!(p.events_per_answer >= 1.0, "{p:?}");
    assert_eq!(m.connections.opened, 40, "keep-alive: one connection each");
    assert!(m.latency_us.p50 > 0 && m.latency_us.p99 < 1_000_000);
    assert!(dir.path().join("out/longpoll.hlog").is_file());
    let csv = std::fs::read_to_string(dir.path().join("out/summary.csv")).unwrap();
    assert!(csv.lines().any(|l| l.starts_with("longpoll,")), "{csv}");
}

#[tokio::test]
async fn fresh_polls_resume_from_their_cursor_after_the_server_loses_its_mailboxes() {
    let (report, _dir) = run_in_process(&scenario(
        "[workload]\nevents_per_second = 200\nsubscribers = 20\nduration = \"3s\"\nwarmup = \"0s\"\n[longpoll]\nhold = \"2s\"\nconnection = \"fresh\"\n[longpoll.server]\nprocesses = 2\ndrop = { at = \"1s\", fraction = 1.0 }\n",
    ))
    .await;
    let m = longpoll(&report);
    let lp = m.longpoll.as_ref().unwrap();
    // Nothing lost: what the drop took from the mailboxes (and what went to the process a
    // fresh connection left) came again from the publisher's backlog.
    assert_eq!((m.events, m.delivered), (600, 600), "{:?} {lp:?}", m.errors);
    assert_eq!(lp.gaps, 0);
    assert!(lp.replayed > 0, "{lp:?}");
    // Every subscriber's mailbox went (one moving to the other process at that instant can
    // have had two).
    let dropped = lp.server.as_ref().unwrap().dropped;
    assert!((20..=40).contains(&dropped), "{dropped} mailboxes dropped");
    // A connection per poll, and none of them a reconnect.
    assert!(m.connections.opened >= 600 / 2, "{:?}", m.connections);
    assert_eq!(m.connections.reconnects, 0);
    assert_eq!(lp.polling.as_ref().unwrap().connection, "fresh");
}

/// A server that answers every poll with `body` (JSON content type, keep-alive).
async fn answering_server(body: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(body.as_bytes()).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn answers_that_are_not_json_or_lack_the_pointer_are_counted_never_a_crash() {
    for (body, missing) in [("<html>busy</html>", false), ("{\"items\":[]}", true)] {
        let addr = answering_server(body).await;
        let (report, _dir) = run_in_process(&scenario(&format!(
            "[workload]\nevents_per_second = 1\nsubscribers = 2\nduration = \"1s\"\nwarmup = \"0s\"\n[longpoll]\nurl = \"http://{addr}/poll/{{subscriber}}?after={{cursor}}\"\ntimestamp_field = \"/ts\"\nreconnect = {{ initial = \"100ms\", max = \"100ms\", jitter = \"none\" }}\n"
        )))
        .await;
        let m = longpoll(&report);
        let bad = m.errors.get("bad_response").copied().unwrap_or(0);
        assert!(bad >= 4, "every answer counted as bad: {:?}", m.errors);
        let p = m.longpoll.as_ref().unwrap().polling.as_ref().unwrap();
        assert_eq!(p.bad_answers, bad);
        assert_eq!(m.delivered, 0);
        // Each bad answer ends its connection: the client backs off and polls again.
        assert!(
            m.connections.reconnects >= 2,
            "{missing}: {:?}",
            m.connections
        );
    }
}

#[tokio::test]
async fn an_external_servers_events_are_read_through_the_pointers() {
    // Every answer carries events 1 and 2 of the subscriber: read twice, they are duplicates.
    let addr = answering_server(r#"{"data":{"items":[{"n":1,"t":5},{"n":"2"}]}}"#).await;
    let (report, _dir) = run_in_process(&scenario(&format!(
        "[workload]\nevents_per_second = 1\nsubscribers = 1\nduration = \"1s\"\nwarmup = \"0s\"\n[longpoll]\nurl = \"http://{addr}/poll/{{subscriber}}?after={{cursor}}\"\nevents_field = \"/data/items\"\nsequence_field = \"/n\"\n"
    )))
    .await;
    let m = longpoll(&report);
    let lp = m.longpoll.as_ref().unwrap();
    assert!(m.delivered >= 2, "{:?}", m.errors);
    // The same two events again and again: duplicates, never gaps.
    assert_eq!(lp.gaps, 0);
    assert!(lp.reordered > 0);
    assert_eq!(m.errors.get("bad_response").copied().unwrap_or(0), 0);
}

#[tokio::test]
async fn a_stall_holds_every_answer_and_the_backlog_follows() {
    let (report, _dir) = run_in_process(&scenario(
        "[workload]\nevents_per_second = 200\nsubscribers = 20\nduration = \"3s\"\nwarmup = \"0s\"\n[longpoll]\nhold = \"5s\"\n[longpoll.server]\nstall = { at = \"1s\", for = \"600ms\" }\n",
    ))
    .await;
    let m = longpoll(&report);
    let lp = m.longpoll.as_ref().unwrap();
    assert_eq!((m.events, m.delivered, lp.gaps), (600, 600, 0), "{lp:?}");
    let server = lp.server.as_ref().unwrap();
    assert!(
        server.held >= 100,
        "about 120 events came in the window: {server:?}"
    );
    // The stall's events waited for its end: the first of them about 600 ms.
    let backlog = &lp.backlog_latency_us;
    assert!(backlog.count >= 100, "{backlog:?}");
    assert!(
        backlog.max >= 500_000 && backlog.max < 1_500_000,
        "{backlog:?}"
    );
    // Held answers carry several events each.
    assert!(
        lp.polling.as_ref().unwrap().events_per_answer > 1.0,
        "{lp:?}"
    );
}
