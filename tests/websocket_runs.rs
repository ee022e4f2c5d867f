//! WebSocket runs end to end over loopback against the built-in server (in-process, port 0).

mod common;

use common::{run_in_process, scenario};
use pushbench::record::results::ModelSummary;
use pushbench::run::RunReport;

fn websocket(report: &RunReport) -> &ModelSummary {
    assert!(report.error.is_none(), "{:?}", report.error);
    report
        .summary
        .models
        .iter()
        .find(|m| m.model == "websocket")
        .expect("websocket model ran")
}

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
    assert_eq!(m.connections.reconnects, 200, "and came back");
    assert_eq!(m.connections.opened, 400);
    assert_eq!(
        ws.server.unwrap().connections,
        200,
        "all held again at the end"
    );
    // Events published while a subscriber was away are lost and accounted for.
    assert_eq!(m.delivered + m.failed, m.events);
    assert_eq!(m.failed, ws.unrouted + ws.gaps);
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
    assert_eq!(ws.server.unwrap().connections, 100);
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
        .map(|m| m.model.as_str())
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
            && table.contains("better of the models")
    );
    let ts = std::fs::read_to_string(report.dir.join("timeseries.csv")).unwrap();
    assert!(ts.contains(",webhook,") && ts.contains(",websocket,"));
}
