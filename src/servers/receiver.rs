//! The built-in webhook receiver (hyper): verifies signatures, rejects stale timestamps,
//! de-duplicates by event id, caps body size, stamps arrival, and can inject faults: delay,
//! random 503s, a stall, outage windows (503 or dropped connections), 429 with `Retry-After`,
//! and endpoints that answer 410 Gone. `GET /stats` hands over the delivery-latency histograms recorded since the last call
//! (and cumulative counters), so the harness can merge them per interval.
//!
//! Delivery latency needs the event's intended time; pushbench sends it (and the actual send
//! time) in the `x-pushbench-t: <intended_us>,<sent_us>,<phase>` header, as wall-clock
//! microseconds, so it works across machines with synchronised clocks. Other senders' deliveries
//! are verified and counted but not timed.

use crate::record::results::ReceiverCounters;
use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use super::guard::{ConnLimits, Ending, Guarded};
use crate::clock::{mono_ns, real_ns};
use crate::record::{encode_hist, new_hist, MEASURED, WARMUP};
use crate::scenario::{endpoint_gone, OutageMode, ReceiverConfig};
use crate::schedule::SplitMix64;
use crate::webhook::payload::{index_from_id, run_from_id};
use crate::webhook::sign::{SignatureScheme, SigningKey, VerifyError};

/// Settings of one receiver.
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// Behaviour (delay, failures, stall, body cap, verification).
    pub config: ReceiverConfig,
    /// Key to verify with; `None` or scheme none accepts anything.
    pub key: Option<SigningKey>,
    /// Seed for injected failures.
    pub seed: u64,
    /// Serve TLS with this configuration. Plaintext is still answered on the same port (the
    /// first byte tells them apart), for the harness's `/stats` pulls.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The `/stats` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiverStats {
    /// Counters since start.
    pub counters: ReceiverCounters,
    /// Intended time -> body received, per phase (warm-up, measured), since the last call.
    pub delivery: [String; 2],
    /// Actual send -> body received, per phase, since the last call.
    pub delivery_uncorrected: [String; 2],
}

struct Shard {
    delivery: [Histogram<u64>; 2],
    uncorrected: [Histogram<u64>; 2],
}

impl Shard {
    fn new() -> Self {
        Self {
            delivery: [new_hist(), new_hist()],
            uncorrected: [new_hist(), new_hist()],
        }
    }
}

const SHARDS: usize = 16;
const CHUNK_BITS: u32 = 18; // ids per chunk: 2^18, 32 KiB of bits
const CHUNKS: usize = 1 << 14;

/// Ids seen, lock-free for pushbench's dense ids, a set for anyone else's.
struct SeenIds {
    run: AtomicU64,
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
    other: Mutex<HashSet<Box<[u8]>>>,
    foreign_cap: usize,
}

impl SeenIds {
    fn new() -> Self {
        Self::with_foreign_cap(MAX_FOREIGN_IDS)
    }

    fn with_foreign_cap(foreign_cap: usize) -> Self {
        Self {
            run: AtomicU64::new(u64::MAX),
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            other: Mutex::new(HashSet::new()),
            foreign_cap,
        }
    }

    /// Marks an id seen; true when it was new.
    fn insert(&self, id: &[u8]) -> bool {
        if let Some(run) = run_from_id(id) {
            let _ = self
                .run
                .compare_exchange(u64::MAX, u64::from(run), Relaxed, Relaxed);
            if self.run.load(Relaxed) == u64::from(run) {
                if let Some(index) = index_from_id(id, run) {
                    let chunk = (index >> CHUNK_BITS) as usize;
                    if chunk < CHUNKS {
                        let words = self.chunks[chunk].get_or_init(|| {
                            (0..(1usize << CHUNK_BITS) / 64)
                                .map(|_| AtomicU64::new(0))
                                .collect()
                        });
                        let bit = index & ((1 << CHUNK_BITS) - 1);
                        let mask = 1u64 << (bit % 64);
                        let before = words[(bit / 64) as usize].fetch_or(mask, Relaxed);
                        return before & mask == 0;
                    }
                }
            }
        }
        let mut other = self.other.lock().expect("seen-set lock");
        if other.len() >= self.foreign_cap && !other.contains(id) {
            // Memory stays bounded whatever a sender invents; say once what that costs.
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                eprintln!(
                    "receiver: more than {} distinct event ids not made by pushbench; \
                     duplicates among later ones are no longer detected",
                    self.foreign_cap
                )
            });
            return true;
        }
        other.insert(id.to_vec().into_boxed_slice())
    }
}

/// Most ids from other senders (not pushbench's own, which live in the bitset) remembered for
/// de-duplication: about 100 MB at most.
const MAX_FOREIGN_IDS: usize = 1_000_000;

struct State {
    opts: ReceiverOptions,
    limits: ConnLimits,
    counters: [AtomicU64; 17],
    shards: Vec<Mutex<Shard>>,
    seen: SeenIds,
    first_request_mono: OnceLock<u64>,
    rng_seq: AtomicU64,
}

#[derive(Clone, Copy)]
enum C {
    Connections = 0,
    Requests,
    Unique,
    Duplicates,
    BadSignature,
    Stale,
    TooLarge,
    HeadersTooLarge,
    Malformed,
    Timeouts,
    Injected,
    Stalled,
    BodyBytes,
    OutageUnavailable,
    OutageDropped,
    Throttled,
    Gone,
}

impl State {
    fn bump(&self, c: C, by: u64) {
        self.counters[c as usize].fetch_add(by, Relaxed);
    }

    fn counters(&self) -> ReceiverCounters {
        let g = |c: C| self.counters[c as usize].load(Relaxed);
        ReceiverCounters {
            connections: g(C::Connections),
            requests: g(C::Requests),
            unique: g(C::Unique),
            duplicates: g(C::Duplicates),
            bad_signature: g(C::BadSignature),
            stale: g(C::Stale),
            too_large: g(C::TooLarge),
            headers_too_large: g(C::HeadersTooLarge),
            malformed: g(C::Malformed),
            timeouts: g(C::Timeouts),
            injected_failures: g(C::Injected),
            stalled: g(C::Stalled),
            body_bytes: g(C::BodyBytes),
            outage_unavailable: g(C::OutageUnavailable),
            outage_dropped: g(C::OutageDropped),
            throttled: g(C::Throttled),
            gone: g(C::Gone),
        }
    }

    fn shard(&self) -> &Mutex<Shard> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SLOT: usize = NEXT.fetch_add(1, Relaxed);
        }
        // One shard per thread in practice, so the lock is uncontended.
        &self.shards[SLOT.with(|s| *s) % SHARDS]
    }

    fn take_stats(&self) -> ReceiverStats {
        let mut merged = Shard::new();
        for shard in &self.shards {
            let mut s = shard.lock().expect("shard lock");
            for p in [WARMUP, MEASURED] {
                merged.delivery[p].add(&s.delivery[p]).expect("same bounds");
                merged.uncorrected[p]
                    .add(&s.uncorrected[p])
                    .expect("same bounds");
                s.delivery[p].reset();
                s.uncorrected[p].reset();
            }
        }
        ReceiverStats {
            counters: self.counters(),
            delivery: merged.delivery.each_ref().map(encode_hist),
            delivery_uncorrected: merged.uncorrected.each_ref().map(encode_hist),
        }
    }

    /// True with probability `rate`; `salt` keeps the fault kinds' draws independent.
    fn roll(&self, rate: f64, salt: u64) -> bool {
        if rate <= 0.0 {
            return false;
        }
        // A counter-seeded draw: repeatable for a given request order, no shared RNG state.
        let n = self.rng_seq.fetch_add(1, Relaxed);
        SplitMix64::new(self.opts.seed ^ salt ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_f64()
            < rate
    }
}

/// Why the receiver hung up without answering (an outage in drop mode). hyper closes the
/// connection when the service fails, writing nothing: what a crashed or unreachable
/// receiver looks like to the provider.
#[derive(Debug, thiserror::Error)]
#[error("outage: connection dropped without an answer")]
pub struct Hangup;

fn with_retry_after(mut r: Response<Full<Bytes>>, seconds: Option<u32>) -> Response<Full<Bytes>> {
    if let Some(s) = seconds {
        r.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from(s),
        );
    }
    r
}

/// The subscriber in `/hooks/{subscriber}` (the path's last segment).
fn subscriber_of(path: &str) -> Option<u64> {
    path.rsplit('/').next()?.parse().ok()
}

/// The injected faults that answer before any processing: an outage, a gone endpoint, a
/// throttled request. `None`: handle the request normally.
fn fault_answer(
    state: &State,
    path: &str,
    first_mono: u64,
) -> Option<Result<Response<Full<Bytes>>, Hangup>> {
    let cfg = &state.opts.config;
    if !cfg.outages.is_empty() {
        let since = mono_ns().saturating_sub(first_mono);
        if let Some(outage) = cfg.outages.iter().find(|o| o.covers(since)) {
            return Some(match outage.mode {
                OutageMode::Drop => {
                    state.bump(C::OutageDropped, 1);
                    Err(Hangup)
                }
                OutageMode::Unavailable { retry_after_s } => {
                    state.bump(C::OutageUnavailable, 1);
                    Ok(with_retry_after(
                        reply(StatusCode::SERVICE_UNAVAILABLE, "outage\n"),
                        retry_after_s,
                    ))
                }
            });
        }
    }
    if cfg.gone_fraction > 0.0
        && subscriber_of(path).is_some_and(|s| endpoint_gone(s, cfg.gone_fraction))
    {
        state.bump(C::Gone, 1);
        return Some(Ok(reply(StatusCode::GONE, "endpoint disabled\n")));
    }
    if let Some(t) = cfg.throttle {
        if state.roll(t.rate, 0x7407_7713) {
            state.bump(C::Throttled, 1);
            return Some(Ok(with_retry_after(
                reply(StatusCode::TOO_MANY_REQUESTS, "slow down\n"),
                Some(t.retry_after_s),
            )));
        }
    }
    None
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

/// Reads `x-pushbench-t: intended_us,sent_us,phase`.
fn timing(req: &Request<Incoming>) -> Option<(u64, u64, usize)> {
    let v = req.headers().get("x-pushbench-t")?.to_str().ok()?;
    let mut it = v.split(',');
    let intended = it.next()?.trim().parse().ok()?;
    let sent = it.next()?.trim().parse().ok()?;
    let phase = if it.next()?.trim() == "0" {
        WARMUP
    } else {
        MEASURED
    };
    Some((intended, sent, phase))
}

/// The event id: the scheme's id header, else the body's leading `"id":"..."`.
fn event_id<'a>(req_headers: &'a hyper::HeaderMap, body: &'a [u8]) -> Option<&'a [u8]> {
    for name in ["webhook-id", "x-github-delivery"] {
        if let Some(v) = req_headers.get(name) {
            return Some(v.as_bytes());
        }
    }
    let head = &body[..body.len().min(256)];
    let start = head.windows(6).position(|w| w == b"\"id\":\"")? + 6;
    let len = head[start..].iter().position(|&b| b == b'"')?;
    Some(&head[start..start + len])
}

async fn handle(
    state: Arc<State>,
    counted: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Hangup> {
    if req.method() == Method::GET {
        return Ok(match req.uri().path() {
            "/stats" => {
                let body = serde_json::to_vec(&state.take_stats()).expect("stats serialize");
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut()
                    .insert("content-type", "application/json".parse().expect("static"));
                r
            }
            "/health" => reply(StatusCode::OK, "ok\n"),
            _ => reply(StatusCode::NOT_FOUND, "not found\n"),
        });
    }
    if req.method() != Method::POST {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST webhooks here\n",
        ));
    }
    state.bump(C::Requests, 1);
    // Count connections that carry deliveries (not the harness's /stats pulls).
    if !counted.swap(true, Relaxed) {
        state.bump(C::Connections, 1);
    }
    let first = *state.first_request_mono.get_or_init(mono_ns);
    let cfg = &state.opts.config;
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cfg.max_body_bytes as u64) {
        state.bump(C::TooLarge, 1);
        return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"));
    }
    let timing = timing(&req);
    let (parts, body) = req.into_parts();
    // A body already in the read buffer completes on the first poll, before the timer is ever
    // registered, so the deadline costs the hot path a clock read.
    let read = Limited::new(body, cfg.max_body_bytes).collect();
    let body = match tokio::time::timeout(state.limits.body_timeout, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                state.bump(C::TooLarge, 1);
                return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large\n"));
            }
            // Bad chunked framing, or the client went away mid-body.
            state.bump(C::Malformed, 1);
            return Ok(reply(StatusCode::BAD_REQUEST, "could not read the body\n"));
        }
        Err(_) => {
            state.bump(C::Timeouts, 1);
            let mut r = reply(StatusCode::REQUEST_TIMEOUT, "body not received in time\n");
            r.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            return Ok(r);
        }
    };
    // The receiver "has the body" now.
    let arrived_real_us = real_ns() / 1_000;
    state.bump(C::BodyBytes, body.len() as u64);
    // Faults answer before any work is done: a receiver that is down, disabled or rate
    // limited does not verify or store the event.
    if let Some(answer) = fault_answer(&state, parts.uri.path(), first) {
        return answer;
    }

    // Process first (verify, de-duplicate, record), then hold the answer: a slow receiver has
    // usually done the work already, which is why a provider's timeout-and-retry duplicates.
    let answer = process(&state, &parts.headers, &body, timing, arrived_real_us);
    if let Some(stall) = cfg.stall {
        let since = mono_ns().saturating_sub(first);
        if since >= stall.at_ns && since < stall.at_ns + stall.for_ns {
            state.bump(C::Stalled, 1);
            tokio::time::sleep(Duration::from_nanos(stall.at_ns + stall.for_ns - since)).await;
        }
    }
    if cfg.delay_ns > 0 {
        tokio::time::sleep(Duration::from_nanos(cfg.delay_ns)).await;
    }
    Ok(answer)
}

fn process(
    state: &State,
    headers: &hyper::HeaderMap,
    body: &[u8],
    timing: Option<(u64, u64, usize)>,
    arrived_real_us: u64,
) -> Response<Full<Bytes>> {
    if state.opts.config.verify {
        if let Some(key) = &state.opts.key {
            let now_s = real_ns() / 1_000_000_000;
            match key.verify(|n| headers.get(n).map(|v| v.as_bytes()), body, now_s) {
                Ok(()) => {}
                Err(VerifyError::Stale) => {
                    state.bump(C::Stale, 1);
                    return reply(StatusCode::UNAUTHORIZED, "stale timestamp\n");
                }
                Err(_) => {
                    state.bump(C::BadSignature, 1);
                    return reply(StatusCode::UNAUTHORIZED, "bad signature\n");
                }
            }
        }
    }
    if state.roll(state.opts.config.fail_rate, 0) {
        state.bump(C::Injected, 1);
        return reply(StatusCode::SERVICE_UNAVAILABLE, "injected failure\n");
    }
    let new = match event_id(headers, body) {
        Some(id) => state.seen.insert(id),
        None => true,
    };
    if !new {
        state.bump(C::Duplicates, 1);
        return reply(StatusCode::NO_CONTENT, "");
    }
    state.bump(C::Unique, 1);
    if let Some((intended_us, sent_us, phase)) = timing {
        let mut shard = state.shard().lock().expect("shard lock");
        shard.delivery[phase].saturating_record(arrived_real_us.saturating_sub(intended_us).max(1));
        shard.uncorrected[phase].saturating_record(arrived_real_us.saturating_sub(sent_us).max(1));
    }
    reply(StatusCode::NO_CONTENT, "")
}

/// Serves webhooks on `listener` until `shutdown` completes, with the default [`ConnLimits`].
pub async fn serve(
    listener: TcpListener,
    opts: ReceiverOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_with_limits(listener, opts, ConnLimits::default(), shutdown).await
}

/// [`serve`] with chosen limits on slow and oversized requests.
pub async fn serve_with_limits(
    listener: TcpListener,
    opts: ReceiverOptions,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let state = Arc::new(State {
        opts,
        limits,
        counters: Default::default(),
        shards: (0..SHARDS).map(|_| Mutex::new(Shard::new())).collect(),
        seen: SeenIds::new(),
        first_request_mono: OnceLock::new(),
        rng_seq: AtomicU64::new(0),
    });
    let acceptor = state.opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    super::accept_loop(listener, shutdown, move |stream| {
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // A TLS client speaks first with a handshake record (0x16); anything else is
            // plaintext HTTP. Bounded like a request head, so a silent client is dropped.
            let tls = match &acceptor {
                Some(acceptor) => {
                    let mut first = [0u8; 1];
                    let peek =
                        tokio::time::timeout(state.limits.head_timeout, stream.peek(&mut first));
                    match peek.await {
                        Ok(Ok(1)) if first[0] == 0x16 => Some(acceptor.clone()),
                        Ok(Ok(1)) => None,
                        _ => return,
                    }
                }
                None => None,
            };
            let (stream, conn_state) = Guarded::new(stream, &state.limits);
            let conn = conn_state.clone();
            let counted = Arc::new(AtomicBool::new(false));
            let service_state = state.clone();
            let service = service_fn(move |req| {
                let busy = conn.busy();
                let reply = handle(service_state.clone(), counted.clone(), req);
                async move {
                    let r = reply.await;
                    drop(busy);
                    r
                }
            });
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        state
                            .limits
                            .http1()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    // A failed handshake is a connection that did not speak the protocol.
                    Err(_) => {
                        state.bump(C::Malformed, 1);
                        return;
                    }
                },
                None => {
                    state
                        .limits
                        .http1()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            match Ending::of(&result, &conn_state) {
                Ending::Normal => {}
                Ending::Malformed => state.bump(C::Malformed, 1),
                Ending::HeadTooLarge => state.bump(C::HeadersTooLarge, 1),
                Ending::TimedOut => state.bump(C::Timeouts, 1),
            }
        });
    })
    .await
}

/// Scheme + secret -> the key the receiver verifies with.
pub fn key_for(
    scheme: SignatureScheme,
    secret: Option<&str>,
) -> Result<Option<SigningKey>, String> {
    match (scheme, secret) {
        (SignatureScheme::None, _) => Ok(None),
        (_, Some(s)) => SigningKey::new(scheme, s).map(Some),
        (_, None) => Err(format!("signature \"{}\" needs a secret", scheme.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_ids_are_deduplicated_up_to_a_bounded_count() {
        let seen = SeenIds::with_foreign_cap(3);
        assert!(seen.insert(b"evt-a"));
        assert!(!seen.insert(b"evt-a"), "a replay is caught");
        assert!(seen.insert(b"evt-b") && seen.insert(b"evt-c"));
        // Past the cap, new ids are accepted without being remembered; old ones still dedupe.
        assert!(seen.insert(b"evt-d") && seen.insert(b"evt-d"));
        assert!(!seen.insert(b"evt-b"));
        assert_eq!(seen.other.lock().unwrap().len(), 3);
    }
}
