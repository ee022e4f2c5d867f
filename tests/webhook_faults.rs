//! Webhook fault scenarios over loopback: outages, throttling with `Retry-After`, gone
//! endpoints and retry schedules. Every run checks that no delivery is silently lost.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{run_in_process, scenario, webhook};
use pushbench::record::results::ModelSummary;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every delivery ended one way, and the receiver saw each delivered event exactly once.
fn assert_accounted(m: &ModelSummary) {
    assert_eq!(
        m.delivered + m.failed + m.abandoned,
        m.events,
        "delivered + failed + abandoned == events: {m:#?}"
    );
    assert_eq!(
        m.attempts_per_event.count, m.events,
        "every delivery's attempts counted"
    );
    if let Some(r) = m.receiver {
        assert_eq!(r.unique, m.delivered, "the receiver's unique count agrees");
    }
}

/// Arrival times of each event id at [`flaky`].
type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

/// A receiver that answers the first `fail_first` attempts of every event with `failure`
/// (a complete HTTP response), then 204; it records when each attempt arrived.
async fn flaky(fail_first: usize, failure: &'static str) -> (SocketAddr, Arrivals) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: head, then Content-Length bytes of body.
                    let (head_end, len) = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buf.len() < head_end + len {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]);
                    let id = body
                        .split("\"id\":\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .unwrap_or("")
                        .to_string();
                    buf.drain(..head_end + len);
                    let n = {
                        let mut seen = seen.lock().unwrap();
                        let times = seen.entry(id).or_default();
                        times.push(Instant::now());
                        times.len()
                    };
                    let answer = if n <= fail_first {
                        failure
                    } else {
                        "HTTP/1.1 204 No Content\r\n\r\n"
                    };
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, arrivals)
}

/// The smallest gap between consecutive attempts n and n+1 over all events.
fn min_gap(arrivals: &Arrivals, n: usize) -> Duration {
    arrivals
        .lock()
        .unwrap()
        .values()
        .map(|t| t[n + 1] - t[n])
        .min()
        .unwrap()
}

#[tokio::test]
async fn retry_after_on_429_is_honoured_scaled_by_time_scale() {
    // Retry-After: 2 at time_scale 0.1 is 200 ms, far above the 1 ms backoff: the provider
    // must wait for the receiver, not for its own backoff.
    let (addr, arrivals) = flaky(
        1,
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let s = scenario(&format!(
        r#"
[workload]
events_per_second = 50
subscribers = 10
duration = "1s"
[webhook]
url = "http://{addr}/hooks/{{subscriber}}"
signature = "none"
retry = {{ attempts = 3, initial = "1ms", max = "10s", time_scale = 0.1 }}
"#
    ));
    let (report, _dir) = run_in_process(&s).await;
    let m = webhook(&report);
    assert_eq!((m.delivered, m.failed, m.retries), (50, 0, 50), "{m:#?}");
    assert_eq!(m.errors["status_429"], 50);
    assert_eq!(
        m.attempts_histogram,
        vec![0, 0, 50],
        "each took two attempts"
    );
    assert_accounted(m);
    let gap = min_gap(&arrivals, 0);
    assert!(
        gap >= Duration::from_millis(200),
        "the retry came {gap:?} after the 429, before the scaled Retry-After (200 ms)"
    );
    assert!(
        m.time_to_delivery_us.min >= 200_000,
        "time to delivery includes the wait: {:?}",
        m.time_to_delivery_us
    );
}

#[tokio::test]
async fn a_retry_schedule_is_followed_and_delivers_on_the_expected_attempt() {
    // The Standard Webhooks shape compressed: 0s, 1s, 2s, 4s at time_scale 0.1. The first three
    // attempts fail, the fourth (the last the schedule allows) succeeds.
    let (addr, arrivals) = flaky(
        3,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let s = scenario(&format!(
        r#"
[workload]
events_per_second = 20
subscribers = 5
duration = "1s"
[webhook]
url = "http://{addr}/hooks/{{subscriber}}"
signature = "none"
retry = {{ schedule = ["0s", "1s", "2s", "4s"], time_scale = 0.1 }}
"#
    ));
    let (report, _dir) = run_in_process(&s).await;
    let m = webhook(&report);
    assert_eq!((m.delivered, m.failed, m.retries), (20, 0, 60), "{m:#?}");
    assert_eq!(m.attempts_histogram, vec![0, 0, 0, 0, 20]);
    assert_eq!((m.attempts_per_event.min, m.attempts_per_event.max), (4, 4));
    assert_accounted(m);
    for (n, want_ms) in [(0, 100), (1, 200), (2, 400)] {
        let gap = min_gap(&arrivals, n);
        assert!(
            gap >= Duration::from_millis(want_ms),
            "wait before retry {} was {gap:?}, the schedule says {want_ms} ms",
            n + 1
        );
    }
}

#[tokio::test]
async fn a_schedule_that_runs_out_fails_the_delivery_after_its_last_attempt() {
    let (addr, arrivals) = flaky(
        usize::MAX,
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let s = scenario(&format!(
        r#"
[workload]
events_per_second = 10
subscribers = 5
duration = "1s"
[webhook]
url = "http://{addr}/hooks/{{subscriber}}"
signature = "none"
retry = {{ schedule = ["0s", "5m", "30m"], time_scale = 0.0001 }}
"#
    ));
    let (report, _dir) = run_in_process(&s).await;
    let m = webhook(&report);
    assert_eq!((m.delivered, m.failed, m.abandoned), (0, 10, 0), "{m:#?}");
    assert_eq!(m.attempts_histogram, vec![0, 0, 0, 10]);
    assert_accounted(m);
    assert!(arrivals.lock().unwrap().values().all(|t| t.len() == 3));
}

#[tokio::test]
async fn gone_endpoints_abandon_their_deliveries_and_are_never_retried() {
    // 50 endpoints, one in ten gone (subscribers 9, 19, 29, 39, 49); round robin gives each
    // 8 of the 400 deliveries.
    let s = scenario(
        r#"
[workload]
events_per_second = 200
subscribers = 50
duration = "2s"
[webhook]
retry = { attempts = 5, initial = "10ms" }
[webhook.receiver]
gone = { subscribers = 0.1 }
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let m = webhook(&report);
    let r = m.receiver.unwrap();
    assert_eq!((m.delivered, m.failed, m.abandoned), (360, 0, 40), "{m:#?}");
    assert_eq!(m.endpoints_gone, 5);
    assert_eq!(m.retries, 0, "410 is final");
    assert!(
        (5..=40).contains(&r.gone),
        "each gone endpoint answered 410 at least once, then was not sent to: {}",
        r.gone
    );
    assert_eq!(m.errors["status_410"], r.gone);
    assert_eq!(r.requests, m.delivered + r.gone, "nothing else reached it");
    assert_eq!(
        m.attempts_histogram[0] + m.attempts_histogram[1],
        400,
        "abandoned without sending (0) or after the one 410 (1)"
    );
    assert_accounted(m);
}

async fn outage_run(mode: &str) -> (ModelSummary, std::path::PathBuf, tempfile::TempDir) {
    let s = scenario(&format!(
        r#"
[workload]
events_per_second = 200
subscribers = 20
duration = "2s"
[webhook]
pool = 8
retry = {{ attempts = 30, initial = "20ms", max = "100ms", jitter = "equal" }}
[webhook.receiver]
outage = {{ at = "500ms", for = "500ms", mode = "{mode}" }}
"#
    ));
    let (report, dir) = run_in_process(&s).await;
    (webhook(&report).clone(), report.dir.clone(), dir)
}

/// Retries summed over `timeseries.csv`'s rows, and the number of rows with any.
fn timeseries_retries(dir: &std::path::Path) -> (u64, usize) {
    let mut r = csv::Reader::from_path(dir.join("timeseries.csv")).unwrap();
    let col = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "retries")
        .unwrap();
    let per_row: Vec<u64> = r
        .records()
        .map(|row| row.unwrap()[col].parse().unwrap())
        .collect();
    (
        per_row.iter().sum(),
        per_row.iter().filter(|&&n| n > 0).count(),
    )
}

#[tokio::test]
async fn a_503_outage_is_retried_through_and_every_event_delivered() {
    let (m, dir, _tmp) = outage_run("503").await;
    let r = m.receiver.unwrap();
    assert_eq!((m.delivered, m.failed, m.abandoned), (400, 0, 0), "{m:#?}");
    assert!(r.outage_unavailable >= 100, "{r:?}");
    assert_eq!(m.retries, r.outage_unavailable, "each 503 was retried once");
    assert_eq!(m.errors["status_5xx"], m.retries);
    assert!(m.attempts_per_event.max >= 2);
    assert!(
        m.time_to_delivery_us.max >= 100_000,
        "{:?}",
        m.time_to_delivery_us
    );
    assert_accounted(&m);
    let (sum, rows) = timeseries_retries(&dir);
    assert_eq!(sum, m.retries, "the time series shows every retry");
    assert!(rows >= 1);
}

#[tokio::test]
async fn dropped_connections_during_an_outage_are_retried_and_nothing_is_lost() {
    let (m, _dir, _tmp) = outage_run("drop").await;
    let r = m.receiver.unwrap();
    assert_eq!((m.delivered, m.failed, m.abandoned), (400, 0, 0), "{m:#?}");
    assert!(r.outage_dropped >= 100, "{r:?}");
    assert_eq!(r.outage_unavailable, 0);
    assert_eq!(m.retries, r.outage_dropped, "each hang-up was retried once");
    assert_eq!(
        m.errors["closed"] + m.errors["reset"],
        m.retries,
        "seen as connections closed without an answer: {:?}",
        m.errors
    );
    assert_accounted(&m);
}

#[tokio::test]
async fn throttled_deliveries_wait_for_retry_after_and_all_arrive() {
    let s = scenario(
        r#"
seed = 5
[workload]
events_per_second = 200
subscribers = 20
duration = "1s"
[webhook]
retry = { attempts = 10, initial = "1ms", time_scale = 0.1 }
[webhook.receiver]
throttle = { rate = 0.2, retry_after = "1s" }
"#,
    );
    let (report, _dir) = run_in_process(&s).await;
    let m = webhook(&report);
    let r = m.receiver.unwrap();
    assert_eq!((m.delivered, m.failed), (200, 0), "{m:#?}");
    assert!(r.throttled >= 10, "{r:?}");
    assert_eq!(m.errors["status_429"], r.throttled);
    assert_eq!(m.retries, r.throttled);
    assert!(
        m.time_to_delivery_us.max >= 100_000,
        "a throttled delivery waited the scaled Retry-After (100 ms): {:?}",
        m.time_to_delivery_us
    );
    assert_accounted(m);
}
