//! WebSocket runs end to end over loopback against the built-in server (in-process, port 0).

mod common;

use common::{run_in_process, scenario, websocket};

#[tokio::test]
async fn push_delivers_every_event_to_its_subscriber_in_order() {
    let s = scenario(
        r#"
[workload]
events_per_second = 500
subscribers = 300
duration = "2s"
[websocket]
mode = "push"
connect_rate = 3000
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let m = websocket(&report);
    let ws = m.websocket.as_ref().unwrap();
    assert_eq!((m.events, m.delivered, m.failed), (1000, 1000, 0));
    assert_eq!((ws.gaps, ws.reordered, ws.unrouted), (0, 0, 0));
    assert_eq!(m.latency_us.count, 1000, "every push was timed");
    assert!(m.latency_us.p50 < 100_000, "{:?}", m.latency_us);
    assert_eq!(
        (m.connections.peak, m.connections.opened, m.connect_us.count),
        (300, 300, 300)
    );
    let server = ws.server.expect("server counters");
    assert_eq!(
        (server.pushed, server.upgrades, server.not_connected),
        (1000, 300, 0)
    );
    assert!(ws.ramp_s > 0.0 && ws.ramp_s < 5.0, "{}", ws.ramp_s);
    assert!(report.dir.join("websocket.hlog").is_file());
}

#[tokio::test]
async fn echo_returns_every_message() {
    let s = scenario(
        r#"
[workload]
events_per_second = 400
subscribers = 200
duration = "2s"
payload_bytes = 256
[websocket]
mode = "echo"
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let m = websocket(&report);
    let server = m.websocket.as_ref().unwrap().server.unwrap();
    assert_eq!((m.events, m.delivered, m.failed), (800, 800, 0));
    assert_eq!(server.echoed, 800);
    assert_eq!(
        m.schedule_lag_us.count, 800,
        "every echo send was timed against its intended time"
    );
    assert!(m.uncorrected_latency_us.p50 <= m.latency_us.p50);
}

#[tokio::test]
async fn idle_holds_every_connection_with_heartbeats() {
    let s = scenario(
        r#"
[workload]
events_per_second = 1
subscribers = 300
duration = "2s"
[websocket]
mode = "idle"
ping_interval = "200ms"
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let m = websocket(&report);
    let ws = m.websocket.as_ref().unwrap();
    assert_eq!((m.events, m.connections.peak), (0, 300));
    assert_eq!(
        (ws.disconnects, ws.pongs_missed, m.connections.reconnects),
        (0, 0, 0)
    );
    // About 300 connections x 10 pings each over 2 s (plus the ramp and the drain).
    assert!(ws.pong_rtt_us.count >= 2000, "{:?}", ws.pong_rtt_us);
    assert_eq!(ws.server.unwrap().pongs, ws.pong_rtt_us.count);
}

#[tokio::test]
async fn every_client_reconnects_after_the_server_drops_them_all() {
    let s = scenario(
        r#"
[workload]
events_per_second = 200
subscribers = 200
duration = "4s"
[websocket]
mode = "push"
reconnect = { initial = "50ms", max = "500ms", jitter = "full" }
[websocket.server]
drop = { at = "1s", code = 1001 }
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let m = websocket(&report);
    let ws = m.websocket.as_ref().unwrap();
    assert_eq!(ws.server.unwrap().dropped, 200);
    assert_eq!(ws.server_closes, 200, "every client saw the close frame");
    assert_eq!(ws.close_codes["1001"], 200, "with the code the server sent");
    assert_eq!(m.connections.reconnects, 200, "and came back");
    assert_eq!(m.connections.opened, 400);
    // All held again at the end, as the fleet saw it when the run closed them (the server's
    // own count is read at that same instant, so it races with the closing).
    assert_eq!(ws.down_at_end, 0, "all held again at the end");
    // Events published while a subscriber was away are lost and accounted for.
    assert_eq!(m.delivered + m.failed, m.events);
    assert_eq!(m.failed, ws.unrouted + ws.gaps);
    // The reconnect storm: how long it took, how many tries.
    assert!(
        ws.recovery_s > 0.0 && ws.recovery_s < 3.0,
        "recovery {} s",
        ws.recovery_s
    );
    assert!(
        ws.reconnect_attempts >= 200,
        "at least one try each: {}",
        ws.reconnect_attempts
    );
    // Every try either connected or failed (failed connects also count the ramp's, if any).
    assert!(
        (m.connections.reconnects..=m.connections.reconnects + m.connections.failed)
            .contains(&ws.reconnect_attempts),
        "attempts {} vs reconnects {} + failed {}",
        ws.reconnect_attempts,
        m.connections.reconnects,
        m.connections.failed
    );
}

#[tokio::test]
async fn abrupt_drops_are_counted_as_disconnects_and_recovered() {
    let s = scenario(
        r#"
[workload]
events_per_second = 100
subscribers = 100
duration = "3s"
[websocket]
mode = "idle"
ping_interval = "1s"
reconnect = { initial = "20ms", max = "200ms" }
[websocket.server]
drop = { at = "1s", code = "abrupt", fraction = 0.5 }
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let m = websocket(&report);
    let ws = m.websocket.as_ref().unwrap();
    assert_eq!(ws.server.unwrap().dropped, 50, "half of them");
    assert_eq!(
        (ws.disconnects, ws.server_closes),
        (50, 0),
        "reset, no close frame"
    );
    assert_eq!(m.connections.reconnects, 50);
    assert!(ws.recovery_s > 0.0, "the half that was reset came back");
    assert_eq!(ws.down_at_end, 0, "all 100 held again at the end");
}

#[tokio::test]
async fn a_stalled_server_sends_its_backlog_after_the_stall_and_loses_nothing() {
    let s = scenario(
        r#"
[workload]
events_per_second = 200
subscribers = 100
duration = "3s"
[websocket]
mode = "push"
[websocket.server]
stall = { at = "1s", for = "1s" }
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let m = websocket(&report);
    let ws = m.websocket.as_ref().unwrap();
    let server = ws.server.unwrap();
    assert_eq!((m.events, m.delivered, m.failed), (600, 600, 0), "{m:#?}");
    assert_eq!((ws.gaps, ws.reordered, ws.unrouted), (0, 0, 0));
    assert!(
        // 200/s for a 1 s window; where the window falls against the pacing moves it a little,
        // a busy machine a little more.
        (100..=300).contains(&server.held),
        "about a second of pushes was held: {}",
        server.held
    );
    assert_eq!(server.dropped_slow, 0);
    assert_eq!(server.pushed, 600);
    // The backlog: events intended during the stall, each late by what was left of it.
    let backlog = ws.backlog_latency_us;
    assert!(
        (150..=250).contains(&backlog.count),
        "events intended in the stall: {backlog:?}"
    );
    assert!(
        backlog.max >= 800_000,
        "the first held event waited about 1 s: {backlog:?}"
    );
    assert!(m.latency_us.max >= 800_000);
    assert!(
        m.latency_us.p50 < backlog.p50,
        "the rest of the stream was not held: {:?} vs {backlog:?}",
        m.latency_us
    );
    assert_eq!(
        (ws.recovery_s, m.connections.reconnects),
        (0.0, 0),
        "a stall drops no connection"
    );
}

#[tokio::test]
async fn connections_spread_over_capped_workers_merge_exactly() {
    let s = scenario(
        r#"
[workload]
events_per_second = 300
subscribers = 300
duration = "2s"
[websocket]
mode = "push"
connections_per_worker = 100
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let m = websocket(&report);
    let ws = m.websocket.as_ref().unwrap();
    assert_eq!(ws.fleet_workers, 3);
    assert_eq!(
        (m.connections.peak, m.connections.opened, m.connect_us.count),
        (300, 300, 300)
    );
    assert_eq!((m.events, m.delivered, ws.gaps), (600, 600, 0));
    assert_eq!(
        m.latency_us.count, 600,
        "the merged histogram holds every sample once"
    );
}

#[tokio::test]
async fn both_models_run_on_the_same_stream_and_compare() {
    let s = scenario(
        r#"
[workload]
events_per_second = 200
subscribers = 50
duration = "1s"
[webhook]
pool = 4
[websocket]
mode = "push"
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let models: Vec<&str> = report
        .summary
        .models
        .iter()
        .map(|m| m.model.name())
        .collect();
    assert_eq!(models, vec!["webhook", "websocket"]);
    assert!(report
        .summary
        .models
        .iter()
        .all(|m| m.events == 200 && m.delivered == 200));
    let table = pushbench::report::table::render(&report.summary);
    assert!(
        table.contains("webhook")
            && table.contains("websocket")
            && table.contains("best of the models")
    );
    let ts = std::fs::read_to_string(report.dir.join("timeseries.csv")).unwrap();
    assert!(ts.contains(",webhook,") && ts.contains(",websocket,"));
}

/// A WebSocket server we do not control: after the handshake it waits, then pushes
/// `{"data":{"ts":<unix us>,"n":<seq>}}` text frames, leaving out seq `skip`.
async fn external_push_server(
    wait: std::time::Duration,
    messages: u64,
    skip: u64,
) -> std::net::SocketAddr {
    use pushbench::websocket::client::accept_key;
    use pushbench::websocket::frame::{self, OpCode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut filled = 0;
                let key = loop {
                    filled += s.read(&mut buf[filled..]).await.unwrap();
                    let mut headers = [httparse::EMPTY_HEADER; 32];
                    let mut req = httparse::Request::new(&mut headers);
                    if let httparse::Status::Complete(_) = req.parse(&buf[..filled]).unwrap() {
                        let h = req
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
                            .unwrap();
                        break h.value.to_vec();
                    }
                };
                let head = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                    accept_key(&key)
                );
                s.write_all(head.as_bytes()).await.unwrap();
                tokio::time::sleep(wait).await;
                for n in (0..messages).filter(|n| *n != skip) {
                    let ts = pushbench::clock::real_ns() / 1000;
                    let text = format!("{{\"data\":{{\"ts\":{ts},\"n\":{n}}}}}");
                    let mut out = Vec::new();
                    frame::encode(&mut out, OpCode::Text, text.as_bytes(), None);
                    if s.write_all(&out).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                // Answer the client's close, then hang up.
                let mut frame_buf = [0u8; 256];
                if s.read(&mut frame_buf).await.unwrap_or(0) > 0 {
                    let mut out = Vec::new();
                    frame::encode(&mut out, OpCode::Close, &1000u16.to_be_bytes(), None);
                    let _ = s.write_all(&out).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_from_an_external_server_are_timed_and_checked_by_json_pointers() {
    let addr = external_push_server(std::time::Duration::from_millis(1500), 50, 5).await;
    let s = scenario(&format!(
        r#"
[workload]
events_per_second = 1
subscribers = 20
duration = "3s"
[websocket]
url = "ws://{addr}/feed/{{subscriber}}"
mode = "push"
timestamp_field = "/data/ts"
sequence_field = "/data/n"
"#
    ));
    let (report, _dir) = run_in_process(&s).await;
    let m = websocket(&report);
    let ws = m.websocket.as_ref().unwrap();
    assert_eq!(
        m.delivered,
        20 * 49,
        "every message but the skipped one arrived"
    );
    assert_eq!(
        ws.gaps, 20,
        "the skipped one shows as one gap per subscriber"
    );
    assert_eq!((m.events, m.failed), (20 * 50, 20));
    assert_eq!(
        m.latency_us.count,
        20 * 49,
        "each message was timed from its own timestamp"
    );
    assert!(m.latency_us.p50 < 50_000, "{:?}", m.latency_us);
    assert!(
        ws.server.is_none(),
        "nothing is known of an external server's insides"
    );
}

#[tokio::test]
async fn closed_loop_echo_pipelines_and_gets_every_message_back_in_order() {
    let s = scenario(
        r#"
[workload]
shape = "max"
subscribers = 20
payload_bytes = 64
duration = "1s"
[websocket]
mode = "echo"
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let m = websocket(&report);
    let ws = m.websocket.as_ref().unwrap();
    assert!(
        m.events > 20 * 64,
        "more than one window per connection: {}",
        m.events
    );
    assert_eq!(
        (m.delivered, m.failed),
        (m.events, 0),
        "every message came back"
    );
    assert_eq!((ws.gaps, ws.reordered), (0, 0), "in order, once");
    assert_eq!(ws.server.unwrap().echoed, m.events);
    assert_eq!(m.latency_us.count, m.events);
    assert!(m.achieved_rate > 0.0);
}

fn with_env(src: &str) -> pushbench::scenario::Scenario {
    pushbench::scenario::parse(src, "auth", &|name| match name {
        "PB_WS_TOKEN" => Some("s3cret-token".into()),
        "PB_WS_AUTH" => Some("Bearer s3cret-token".into()),
        _ => None,
    })
    .unwrap_or_else(|p| panic!("{p:#?}"))
}

#[tokio::test]
async fn a_server_token_admits_upgrades_that_carry_it_and_counts_the_rest_as_auth_failures() {
    let base = |headers: &str| {
        format!(
            "[workload]\nevents_per_second = 100\nsubscribers = 20\nduration = \"1s\"\n[websocket]\nmode = \"push\"\nreconnect = {{ initial = \"200ms\", max = \"1s\" }}\n{headers}\n[websocket.server]\ntoken = \"env:PB_WS_TOKEN\"\n"
        )
    };
    // With the header (read from the environment), every subscriber connects and gets its events.
    let s = with_env(&base(
        "headers = { \"Authorization\" = \"env:PB_WS_AUTH\" }",
    ));
    let (report, _dir) = run_in_process(&s).await;
    let m = websocket(&report);
    assert_eq!((m.events, m.delivered, m.failed), (100, 100, 0));
    assert_eq!(m.connections.failed, 0);
    let server = m.websocket.as_ref().unwrap().server.as_ref().unwrap();
    assert_eq!((server.upgrades, server.unauthorized), (20, 0));

    // Without it, every upgrade is refused with 401 and counted with reason auth.
    let (report, _dir) = run_in_process(&with_env(&base(""))).await;
    let m = &report.summary.models[0];
    assert_eq!(m.connections.opened, 0);
    assert!(m.connections.failed >= 20, "{:?}", m.connections);
    assert_eq!(m.errors["auth"], m.connections.failed, "{:?}", m.errors);
    let server = m.websocket.as_ref().unwrap().server.as_ref().unwrap();
    assert_eq!(server.upgrades, 0);
    assert!(server.unauthorized >= 20, "{server:?}");
    let table = pushbench::report::table::render(&report.summary);
    assert!(table.contains("(auth "), "{table}");
}
