//! Runs the webhook model end to end: starts (or checks) the receiver, spreads the schedule over
//! delivery workers, merges their interval records with the receiver's, and writes the time
//! series and interval log as it goes, so a run's memory does not grow with its length.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::clock::{mono_ns, WallMap};
use crate::model_kind::ModelKind;
use crate::record::results::{Connections, ModelSummary, ReceiverCounters};
use crate::record::saturation::{self, Pool, SendFigures};
use crate::record::ErrorKind;
use crate::record::{decode_hist, new_hist, Counter, Percentiles, Reporter, MEASURED, WARMUP};
use crate::run::context::{probe_url, RunContext, RunError};
use crate::run::pipeline::{
    write_percentiles, Closed, Driver, IntervalFigures, Pipeline, PipelineSpec,
};
use crate::scenario::{ConnectionMode, Scenario, UrlTemplate, WebhookConfig, WebhookTarget};
use crate::servers::launch::{fetch_stats, launch_receiver, RunningTarget};
use crate::webhook::provider::{spawn_worker, DeliverySpec, WorkerPlan};
use crate::webhook::retry::GoneEndpoints;
use crate::webhook::sign::{random_secret, SignatureScheme, SigningKey};

/// What the webhook model adds to each interval: the built-in receiver's own view (its
/// delivery histograms and counters), and when deliveries last completed.
struct WebhookDriver {
    /// The built-in receiver, pulled once per interval.
    receiver: Option<SocketAddr>,
    /// The receiver's delivery latency over the measured phase (corrected, uncorrected).
    delivery: Histogram<u64>,
    delivery_uncorrected: Histogram<u64>,
    counters: Option<ReceiverCounters>,
    last_measured_completion_s: f64,
    warmup_s: f64,
    /// Connections speak TLS: the handshake histogram is logged too.
    tls: bool,
}

impl Driver for WebhookDriver {
    fn interval(&mut self, c: &Closed<'_>, ctx: &mut RunContext) -> IntervalFigures {
        let stats = c.stats;
        // The receiver's view of this interval: histograms since the last pull.
        let mut delivery = [new_hist(), new_hist()];
        let mut delivery_unc = [new_hist(), new_hist()];
        if let Some(addr) = self.receiver {
            match fetch_stats(addr) {
                Ok(s) => {
                    for p in [WARMUP, MEASURED] {
                        delivery[p] = decode_hist(&s.delivery[p]).unwrap_or_else(|_| new_hist());
                        delivery_unc[p] =
                            decode_hist(&s.delivery_uncorrected[p]).unwrap_or_else(|_| new_hist());
                    }
                    self.counters = Some(s.counters);
                }
                Err(e) => ctx.warn(format!("could not read the receiver's stats: {e}")),
            }
        }
        let measured = &stats.phases[MEASURED];
        self.delivery.add(&delivery[MEASURED]).expect("same bounds");
        self.delivery_uncorrected
            .add(&delivery_unc[MEASURED])
            .expect("same bounds");
        if measured.get(Counter::Delivered) > 0 && c.end_s > self.warmup_s {
            self.last_measured_completion_s = c.end_s;
        }
        // Headline latency over both phases, for the time series.
        let headline = if self.receiver.is_some() {
            let mut h = delivery[WARMUP].clone();
            h.add(&delivery[MEASURED]).expect("same bounds");
            h
        } else {
            stats.merged(|p| &p.ack)
        };
        let errors = ErrorKind::ALL
            .iter()
            .map(|k| stats.phases.iter().map(|p| p.errors(*k)).sum::<u64>())
            .sum();
        // Interval log: the measured phase only, so the log adds up to the summary.
        let [_, lat] = delivery;
        let [_, unc] = delivery_unc;
        let (lat, unc) = if self.receiver.is_some() {
            (lat, unc)
        } else {
            (measured.ack.clone(), measured.ack_uncorrected.clone())
        };
        IntervalFigures {
            headline,
            errors,
            failed: stats.total(Counter::Failed),
            dropped: stats.total(Counter::Dropped),
            retries: stats.total(Counter::Retries),
            abandoned: stats.total(Counter::Abandoned),
            logged: vec![
                ("latency", lat),
                ("uncorrected_latency", unc),
                ("ack_latency", measured.ack.clone()),
                ("ack_uncorrected_latency", measured.ack_uncorrected.clone()),
                ("schedule_lag", measured.lag.clone()),
                // Connects belong to no event, so like the summary's connect_us they cover
                // both phases.
                ("connect", stats.merged(|p| &p.connect)),
            ]
            .into_iter()
            .chain(
                self.tls
                    .then(|| ("tls_handshake", stats.merged(|p| &p.tls_handshake))),
            )
            .collect(),
        }
    }
}

/// Runs the webhook model and returns its summary entry.
pub async fn run_webhook(
    scenario: &Scenario,
    cfg: &WebhookConfig,
    ctx: &mut RunContext,
) -> Result<ModelSummary, RunError> {
    let secret = match &cfg.secret {
        Some(s) => s.0.clone(),
        None => random_secret(cfg.signature),
    };
    let key = SigningKey::new(cfg.signature, &secret).map_err(RunError::Setup)?;

    // With `[network]`, the built-in receiver sits behind an emulated link.
    let link = crate::netem::start_for(
        scenario.network.as_ref(),
        cfg.target.is_builtin(),
        scenario.seed,
    )
    .map_err(RunError::Setup)?;
    // The built-in receiver serves TLS with a certificate made for this run, which the
    // client (and only it) trusts.
    let identity = match (&cfg.target, &cfg.tls) {
        (WebhookTarget::Builtin(_), Some(_)) => Some(
            crate::tls::Identity::generate_for(link.as_ref().map(|l| l.addrs.target.into()))
                .map_err(RunError::Setup)?,
        ),
        _ => None,
    };
    let (target, url) = match &cfg.target {
        WebhookTarget::Builtin(rcfg) => {
            let secret = (cfg.signature != SignatureScheme::None).then_some(secret.as_str());
            let t = launch_receiver(
                &ctx.launch,
                rcfg,
                cfg.signature,
                secret,
                scenario.seed,
                identity.as_ref(),
                link.as_ref(),
            )
            .map_err(RunError::Setup)?;
            let url = UrlTemplate::builtin(t.addr, cfg.tls.is_some());
            (Some(t), url)
        }
        WebhookTarget::External(url) => (None, url.clone()),
    };
    if cfg.tls.as_ref().is_some_and(|t| !t.verify) {
        ctx.warn(
            "webhook.tls.verify = false: the server's certificate is not checked (use it \
             against test targets only)"
                .into(),
        );
    }
    let tls = match &cfg.tls {
        Some(settings) => Some(
            crate::tls::client(
                settings,
                &url.host,
                identity.as_ref().and_then(|i| i.ca_pem.as_deref()),
            )
            .map_err(RunError::Setup)?,
        ),
        None => None,
    };
    let result = drive(scenario, cfg, ctx, key, target.as_ref(), url, tls).await;
    if let Some(t) = target {
        t.stop();
    }
    result.map(|mut summary| {
        crate::netem::finish_into(link, scenario.network.as_ref(), &mut summary);
        summary
    })
}

/// Delivery threads a run uses: as configured, else one per 10k deliveries/s up to one per
/// core (at low rates a single pacer thread means fewer wake-ups competing with the target for
/// the same cores); never more than the pool.
pub fn delivery_workers(w: &crate::scenario::Workload, cfg: &WebhookConfig) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_rate = w.shape.peak_rate_per_sec().map_or(cores, |r| {
        ((r * w.fanout as f64) / 10_000.0).ceil() as usize
    });
    cfg.workers
        .unwrap_or(by_rate.clamp(1, cores))
        .clamp(1, cfg.pool)
}

async fn drive(
    scenario: &Scenario,
    cfg: &WebhookConfig,
    ctx: &mut RunContext,
    key: SigningKey,
    target: Option<&RunningTarget>,
    url: UrlTemplate,
    tls: Option<crate::tls::ClientTls>,
) -> Result<ModelSummary, RunError> {
    let addr = match target {
        Some(t) => t.addr,
        None => probe_url(&url)?,
    };
    let negotiated =
        match &tls {
            Some(tls) => Some(crate::tls::probe(addr, tls).await.map_err(|reason| {
                RunError::Unreachable {
                    url: url.raw.clone(),
                    reason,
                }
            })?),
            None => None,
        };
    let w = &scenario.workload;
    let workers = delivery_workers(w, cfg);
    let slots_per_worker = cfg.pool.div_ceil(workers);
    let run_id = ((crate::clock::real_ns() / 1_000) ^ u64::from(std::process::id())) as u32;
    let spec = Arc::new(DeliverySpec {
        addr,
        host_header: url.authority(),
        url,
        connection: cfg.connection,
        slots_per_worker,
        key,
        timeout_ns: cfg.timeout_ns,
        retry: cfg.retry.clone(),
        gone: GoneEndpoints::new(w.subscribers),
        drain_ns: cfg.drain_ns,
        max_backlog_per_worker: cfg.max_backlog.div_ceil(workers).max(1),
        max_wait_ns: cfg.max_wait_ns,
        payload_bytes: w.payload_bytes,
        run_id,
        seed: scenario.seed,
        tls: tls.map(Arc::new),
        headers: cfg.headers.clone(),
    });
    let schedule = Arc::new(w.schedule(scenario.seed));
    let interval_ns = ctx.interval_ns;
    let wall = WallMap::now();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();

    // Leave the workers time to start before t = 0.
    let start_mono = mono_ns() + 50_000_000;
    let warmup_s = w.warmup_ns as f64 / 1e9;
    let spec_p = PipelineSpec {
        model: ModelKind::Webhook,
        base_mono: start_mono,
        wall,
        total_s: schedule.total_ns as f64 / 1e9,
        window_s: (warmup_s, (w.warmup_ns + w.duration_ns) as f64 / 1e9),
        target_pids: target.map_or(&[][..], |t| &t.pids),
        link_tid: target.and_then(|t| t.link_tid),
        trim_heap: false,
        last_row_carries_rest: false,
    };
    let pipeline = Pipeline::start(&spec_p);
    if let Some(t) = target {
        // Start the receiver's interval histograms empty.
        let _ = fetch_stats(t.stats_addr);
    }
    let mut handles = Vec::new();
    for worker in 0..workers as u64 {
        let plan = WorkerPlan {
            worker,
            workers: workers as u64,
            schedule: schedule.clone(),
            start_mono,
            warmup_ns: w.warmup_ns,
            interval_ns,
            wall,
            spec: spec.clone(),
            stop: stop.clone(),
            tx: Reporter::new(tx.clone(), worker),
        };
        handles.push(
            spawn_worker(plan)
                .map_err(|e| RunError::Setup(format!("cannot start a worker thread: {e}")))?,
        );
    }
    drop(tx);

    let mut driver = WebhookDriver {
        receiver: target.map(|t| t.stats_addr),
        delivery: new_hist(),
        delivery_uncorrected: new_hist(),
        counters: None,
        last_measured_completion_s: 0.0,
        warmup_s,
        tls: negotiated.is_some(),
    };
    let rec = pipeline
        .collect(&spec_p, ctx, workers, &mut rx, &stop, &mut driver)
        .await;
    for h in handles {
        if h.join().is_err() {
            ctx.mark_incomplete("a webhook delivery worker panicked".into());
        }
    }
    let rec = rec?;

    // Summary.
    let g = &rec.measured;
    let all = &rec.all;
    let measured_s = match ctx.cut_short_at() {
        Some(at) => (at.saturating_sub(start_mono) as f64 / 1e9 - warmup_s)
            .clamp(1e-9, w.duration_ns as f64 / 1e9),
        None => w.duration_ns as f64 / 1e9,
    };
    let scheduled_measured = w.measured_deliveries(scenario.seed);
    let builtin = target.is_some();
    let (latency, uncorrected) = if builtin {
        (&driver.delivery, &driver.delivery_uncorrected)
    } else {
        (&g.ack, &g.ack_uncorrected)
    };
    let mut errors = BTreeMap::new();
    for kind in ErrorKind::ALL {
        errors.insert(kind.name().to_string(), g.errors(kind));
    }
    errors.insert("dropped".to_string(), g.get(Counter::Dropped));
    let delivered = g.get(Counter::Delivered);
    let closed_loop = matches!(w.shape, crate::schedule::Shape::Max);
    let target_rate = scheduled_measured as f64 / (w.duration_ns as f64 / 1e9);
    let common = rec.common(ModelKind::Webhook);
    let mut summary = ModelSummary {
        target_rate,
        achieved_rate: rec.window.rate().unwrap_or(
            delivered as f64
                / measured_s
                    .max(driver.last_measured_completion_s - warmup_s)
                    .max(1e-9),
        ),
        events: g.get(Counter::Offered),
        delivered,
        failed: g.get(Counter::Failed),
        abandoned: g.get(Counter::Abandoned),
        endpoints_gone: all.get(Counter::EndpointsGone),
        unfinished: g.get(Counter::Unfinished),
        dropped: g.get(Counter::Dropped),
        retries: g.get(Counter::Retries),
        attempts_per_event: Percentiles::of_counts(g.attempts_per_delivery()),
        attempts_histogram: attempts_histogram(g.attempts_per_delivery()),
        duplicates: driver.counters.map_or(0, |r| r.duplicates),
        latency_source: if builtin { "receiver" } else { "ack" }.into(),
        latency_us: Percentiles::of(latency),
        uncorrected_latency_us: Percentiles::of(uncorrected),
        connections: Connections {
            target: cfg.pool as u64,
            reconnects: match cfg.connection {
                ConnectionMode::KeepAlive => {
                    all.get(Counter::Connects).saturating_sub(cfg.pool as u64)
                }
                ConnectionMode::Fresh => 0,
            },
            ..common.connections
        },
        bytes_per_event: (g.get(Counter::BytesOut) + g.get(Counter::BytesIn)) as f64
            / delivered.max(1) as f64,
        errors,
        receiver: driver.counters,
        ..common
    };
    summary.tls = negotiated.map(|n| n.summary(all, cfg.tls.as_ref().is_some_and(|t| t.resume)));
    let attempts_per_s = g.get(Counter::Attempts) as f64 / measured_s.max(1e-9);
    let answer = &summary.ack_uncorrected_latency_us;
    summary.saturation = saturation::judge(&SendFigures {
        dropped: summary.dropped,
        pool: Some(Pool {
            size: cfg.pool as u64,
            occupancy: attempts_per_s * answer.mean / 1e6 / cfg.pool.max(1) as f64,
            answer_p50_us: answer.p50,
        }),
        ..rec.send_figures(
            (!closed_loop).then_some(target_rate),
            measured_s,
            workers as f64,
            target.is_some_and(|t| !t.pids.is_empty()),
        )
    });
    let mut metrics = vec![
        ("latency", latency),
        ("uncorrected_latency", uncorrected),
        ("ack_latency", &g.ack),
        ("connect", &all.connect),
    ];
    if summary.tls.is_some() {
        metrics.push(("tls_handshake", &all.tls_handshake));
    }
    write_percentiles(ctx, ModelKind::Webhook, &metrics)?;
    Ok(summary)
}

/// Counts by attempts, without the empty tail.
pub fn attempts_histogram(slots: &[u64]) -> Vec<u64> {
    let len = slots.iter().rposition(|&n| n > 0).map_or(0, |i| i + 1);
    slots[..len].to_vec()
}
