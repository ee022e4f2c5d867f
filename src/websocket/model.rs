//! Runs the WebSocket model end to end: starts the built-in server processes (or checks an
//! external server), ramps the client fleet up, publishes or sends the event stream, merges the
//! interval records and measures what holding the connections costs on each side.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::clock::{mono_ns, WallMap};
use crate::record::results::{Connections, ModelSummary, PerConnection, PollFigures, WsSummary};
use crate::record::saturation::{self, Saturation, SendFigures};
use crate::record::ErrorKind;
use crate::record::{Counter, IntervalStats, Percentiles, PhaseStats, Reporter, MEASURED};
use crate::run::context::{probe_url, RunContext, RunError};
use crate::run::pipeline::{
    write_percentiles, Closed, Driver, IntervalFigures, Pipeline, PipelineSpec,
};
use crate::scenario::{PushProtocol, Scenario, UrlTemplate, WebSocketConfig, WsMode, WsTarget};
use crate::servers::launch::TargetLaunch;
use crate::servers::launch::{launch_ws_servers, RunningWsServers};
use crate::websocket::controller::{spawn_controller, ControllerPlan};
use crate::websocket::fleet::{spawn_fleet_worker, FleetSpec, FleetTls, JsonFields};

/// Connections one server process is given at most; fewer when its open-files limit is lower.
const CONNECTIONS_PER_SERVER_PROCESS: u64 = 16_000;

/// Connections one built-in server process can be given under this machine's limit.
fn per_server_process() -> u64 {
    CONNECTIONS_PER_SERVER_PROCESS.min(open_files_limit().saturating_sub(256).max(64) * 4 / 5)
}

/// Raises the soft open-files limit to the hard one (held connections are files); returns
/// the limit now in force.
pub fn raise_open_files_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    open_files_limit()
}

/// The soft open-files limit of this process.
pub fn open_files_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    }
}

/// Loopback source addresses per fleet worker.
const SOURCES_PER_WORKER: u64 = 32;

/// Loopback source addresses of fleet worker `w`: 127.1.w.1 to 127.1.w.32 (worker 256 and up
/// continue in 127.2.x.y). Few connections per (source, destination) pair keep the kernel's
/// ephemeral-port search short: with one source address, 16,000 connections to one server port
/// spent three quarters of the fleet's CPU in `__inet_check_established`.
pub fn source_ips(w: u64) -> Vec<IpAddr> {
    (1..=SOURCES_PER_WORKER)
        .map(|i| {
            IpAddr::V4(Ipv4Addr::new(
                127,
                1 + (w / 256) as u8,
                (w % 256) as u8,
                i as u8,
            ))
        })
        .collect()
}

/// Fleet worker `w`'s share of an emulated link's source addresses: every `workers`-th one,
/// so workers use addresses of their own while there are enough (one each when there are not).
pub fn link_share(sources: &[IpAddr], w: u64, workers: u64) -> Vec<IpAddr> {
    let n = sources.len() as u64;
    let mine: Vec<IpAddr> = (0..n)
        .filter(|i| i % workers == w % workers)
        .map(|i| sources[i as usize])
        .collect();
    if mine.is_empty() {
        vec![sources[(w % n) as usize]]
    } else {
        mine
    }
}

/// Runs the WebSocket model and returns its summary entry.
pub async fn run_websocket(
    scenario: &Scenario,
    cfg: &WebSocketConfig,
    ctx: &mut RunContext,
) -> Result<ModelSummary, RunError> {
    // This shard's subscribers: all of them unless the run is sharded.
    let subs = scenario.workload.shard_subscribers();
    // The built-in server serves TLS with a certificate made for this run, which the fleet
    // (and only it) trusts.
    // With `[network]`, the built-in server sits behind an emulated link.
    let link = crate::netem::start_for(
        scenario.network.as_ref(),
        cfg.target.is_builtin(),
        scenario.seed,
    )
    .map_err(RunError::Setup)?;
    let identity = match (&cfg.target, &cfg.tls) {
        (WsTarget::Builtin(_), Some(_)) => Some(
            crate::tls::Identity::generate_for(link.as_ref().map(|l| l.addrs.target.into()))
                .map_err(RunError::Setup)?,
        ),
        _ => None,
    };
    let (servers, url, addr) = match &cfg.target {
        WsTarget::Builtin(server) => {
            let processes = server
                .processes
                .unwrap_or_else(|| subs.div_ceil(per_server_process()) as usize)
                .max(1);
            let token = server.token.as_ref().map(|t| t.0.as_str());
            let s = launch_ws_servers(
                &ctx.launch,
                processes,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                token,
                identity.as_ref(),
                link.as_ref(),
            )
            .map_err(RunError::Setup)?;
            let url = match cfg.protocol {
                PushProtocol::WebSocket => UrlTemplate::builtin_ws(s.addr, cfg.tls.is_some()),
                PushProtocol::Sse => UrlTemplate::builtin_sse(s.addr, cfg.tls.is_some()),
                PushProtocol::LongPoll => UrlTemplate::builtin_poll(
                    s.addr,
                    cfg.tls.is_some(),
                    cfg.poll.as_ref().map_or(20_000, |p| p.hold_ns / 1_000_000),
                ),
            };
            let addr = s.addr;
            (Some(s), url, addr)
        }
        WsTarget::External(url) => {
            let addr = probe_url(url)?;
            (None, url.clone(), addr)
        }
    };
    let tls = match &cfg.tls {
        Some(settings) => {
            if !settings.verify {
                ctx.warn(format!(
                    "{}.tls.verify = false: the server's certificate is not checked (use it \
                     against test targets only)",
                    cfg.protocol.section()
                ));
            }
            let fleet = FleetTls {
                settings: settings.clone(),
                run_ca_pem: identity.as_ref().and_then(|i| i.ca_pem.clone()),
            };
            let client = crate::tls::client(settings, &url.host, fleet.run_ca_pem.as_deref());
            match client {
                Ok(client) => Some((client, fleet)),
                Err(e) => {
                    if let Some(s) = servers {
                        s.stop();
                    }
                    return Err(RunError::Setup(e));
                }
            }
        }
        None => None,
    };
    let result = drive(scenario, cfg, ctx, servers.as_ref(), url, addr, tls).await;
    if let Some(s) = servers {
        s.stop();
    }
    result.map(|mut summary| {
        crate::netem::finish_into(link, scenario.network.as_ref(), &mut summary);
        summary
    })
}

/// What the WebSocket model keeps of each interval beyond the pipeline's totals: memory at the
/// peak of held connections, the ramp, and the reconnect storm.
struct WsDriver {
    peak_connections: u64,
    ramps_done: u64,
    ramp_done_mono: u64,
    gen_rss_at_peak: u64,
    worker_rss_baseline: u64,
    target_rss_at_peak: u64,
    last_delivery_mono: u64,
    /// Reconnect storm: first loss, last full recovery, connections down at the end.
    storm: IntervalStats,
    /// The connections speak TLS (their handshakes are logged).
    tls: bool,
}

impl Driver for WsDriver {
    fn interval(&mut self, c: &Closed<'_>, _ctx: &mut RunContext) -> IntervalFigures {
        let stats = c.stats;
        // The last interval at the peak: steady state, after the ramp's transient memory has
        // been handed back.
        if stats.open_connections >= self.peak_connections && stats.open_connections > 0 {
            self.peak_connections = stats.open_connections;
            self.gen_rss_at_peak = c.gen_rss;
            self.target_rss_at_peak = c.target_rss;
        }
        self.ramps_done += stats.ramps_done;
        self.last_delivery_mono = self.last_delivery_mono.max(stats.last_delivery_mono);
        self.worker_rss_baseline += stats.rss_baseline_bytes;
        self.ramp_done_mono = self.ramp_done_mono.max(stats.ramp_done_mono);
        self.storm.add(&IntervalStats {
            first_loss_mono: stats.first_loss_mono,
            recovered_mono: stats.recovered_mono,
            down_at_close: stats.down_at_close,
            ..IntervalStats::default()
        });
        let errors = ErrorKind::ALL
            .iter()
            .map(|k| stats.phases.iter().map(|p| p.errors(*k)).sum::<u64>())
            .sum::<u64>()
            + stats.total(Counter::Disconnects)
            + stats.total(Counter::PongsMissed);
        let m = &stats.phases[MEASURED];
        let mut logged = vec![
            ("latency", m.ack.clone()),
            ("uncorrected_latency", m.ack_uncorrected.clone()),
            ("connect", stats.merged(|p| &p.connect)),
            ("pong_rtt", stats.merged(|p| &p.rtt)),
            ("schedule_lag", m.lag.clone()),
            ("backlog_latency", m.backlog.clone()),
        ];
        if self.tls {
            logged.push(("tls_handshake", stats.merged(|p| &p.tls_handshake)));
        }
        IntervalFigures {
            headline: stats.merged(|p| &p.ack),
            errors,
            failed: stats.total(Counter::Gaps) + stats.total(Counter::Unfinished),
            dropped: stats.total(Counter::Unfinished),
            retries: stats.total(Counter::Reconnects),
            abandoned: 0,
            logged,
        }
    }

    /// Events lost at the very end show no gap: what was offered and never arrived.
    fn unaccounted(&self, all: &PhaseStats, rows_failed: u64) -> u64 {
        let offered = all.get(Counter::Offered);
        let failed = offered.saturating_sub(all.get(Counter::Delivered).min(offered));
        failed.saturating_sub(rows_failed)
    }
}

async fn drive(
    scenario: &Scenario,
    cfg: &WebSocketConfig,
    ctx: &mut RunContext,
    servers: Option<&RunningWsServers>,
    url: UrlTemplate,
    addr: SocketAddr,
    tls: Option<(crate::tls::ClientTls, FleetTls)>,
) -> Result<ModelSummary, RunError> {
    // One handshake first: a certificate or protocol problem stops the run with a message
    // naming the key to change, instead of failing every connect.
    let negotiated =
        match &tls {
            Some((client, _)) => Some(crate::tls::probe(addr, client).await.map_err(|reason| {
                RunError::Unreachable {
                    url: url.raw.clone(),
                    reason,
                }
            })?),
            None => None,
        };
    let w = &scenario.workload;
    // Connections this shard holds (the fleet's workers still number subscribers over all
    // of them, and hold only the shard's).
    let subs = w.shard_subscribers();
    let limit = open_files_limit();
    // Descriptors this process needs besides the fleet's sockets (and the servers', in-process).
    let reserve = 256
        + if servers.is_some_and(|s| s.pids.is_empty()) {
            subs
        } else {
            0
        };
    let room = limit.saturating_sub(reserve);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    // Threads in this process while the fleet fits its open-files limit; past it (or when a
    // per-worker cap is asked for), worker processes of this binary, each with its own limit.
    let exe = match &ctx.launch {
        TargetLaunch::Child(exe) if subs > room || cfg.connections_per_worker.is_some() => {
            Some(exe.clone())
        }
        _ => None,
    };
    let workers = match (&exe, cfg.connections_per_worker) {
        (Some(_), cap) => {
            let cap = cap.map_or(limit.saturating_sub(512).max(1), |c| c as u64);
            subs.div_ceil(cap).max(1)
        }
        (None, _) if subs > room => {
            return Err(RunError::Setup(format!(
                "{subs} connections need more open files than this process may have (RLIMIT_NOFILE {limit}); raise it with `ulimit -n`, or run from the command line, where the fleet spreads over worker processes"
            )));
        }
        (None, cap) => {
            let cap = cap.map_or(u64::MAX, |c| c as u64);
            subs.div_ceil(cap).max(cores.min(subs)).max(1)
        }
    };
    let loopback = addr.ip().is_loopback() && addr.is_ipv4();
    // Against someone else's push server the events are whatever it sends.
    let external_push = servers.is_none() && cfg.mode == WsMode::Push;

    let schedule = Arc::new(w.schedule(scenario.seed));
    let wall = WallMap::now();
    let interval_ns = ctx.interval_ns;
    let ramp_start_mono = mono_ns() + 100_000_000;
    // Each shard ramps its share at its share of the connect rate: together, the scenario's.
    let connect_rate = cfg.connect_rate / w.shard.count as f64;
    let ramp_ns = (subs as f64 / connect_rate * 1e9) as u64;
    // Events start once the ramp should be over, plus a second to settle.
    let events_start_mono = ramp_start_mono + ramp_ns + 1_000_000_000;
    let warmup_end_real_us = wall.to_real_ns(events_start_mono + w.warmup_ns) / 1000;
    let close_at_mono = events_start_mono + schedule.total_ns + cfg.drain_ns;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (drop_fault, stall) = match &cfg.target {
        WsTarget::Builtin(s) => (s.drop, s.stall),
        WsTarget::External(_) => (None, None),
    };
    let stall_real_us = stall.map(|st| {
        let from = wall.to_real_ns(events_start_mono + st.at_ns) / 1000;
        (from, from + st.for_ns / 1000)
    });

    // The measured window on the intervals' clock (they count from the ramp's start).
    let window_from_s = (events_start_mono - ramp_start_mono + w.warmup_ns) as f64 / 1e9;
    let spec_p = PipelineSpec {
        model: cfg.protocol.model(),
        base_mono: ramp_start_mono,
        wall,
        total_s: (close_at_mono - ramp_start_mono) as f64 / 1e9,
        window_s: (window_from_s, window_from_s + w.duration_ns as f64 / 1e9),
        target_pids: servers.map_or(&[][..], |s| &s.pids),
        link_tid: servers.and_then(|s| s.link_tid),
        trim_heap: true,
        last_row_carries_rest: true,
    };
    let mut pipeline = Pipeline::start(&spec_p);
    let (gen_rss_before, target_rss_before) = pipeline.rss_before();

    let mut handles = Vec::new();
    let mut worker_procs = Vec::new();
    for worker in 0..workers {
        let spec = FleetSpec {
            worker,
            workers,
            subscribers: w.subscribers,
            addr,
            url: url.clone(),
            // Each worker its own loopback source address: its own 28k ephemeral ports.
            // Shards on one machine (a rehearsal) connect from addresses of their own too.
            // Across an emulated link, the link's own source addresses, shared out.
            source_ips: match servers.map(|s| &s.link_sources) {
                Some(link) if !link.is_empty() => link_share(link, worker, workers),
                _ if loopback => source_ips(w.shard.index + w.shard.count * worker),
                _ => Vec::new(),
            },
            mode: cfg.mode,
            connect_rate_per_sec: connect_rate / workers as f64,
            ping_interval_ns: cfg.ping_interval_ns,
            reconnect: cfg.reconnect,
            ramp_start_mono,
            events_start_mono,
            warmup_end_real_us,
            close_at_mono,
            schedule: (*schedule).clone(),
            payload_bytes: w.payload_bytes,
            interval_ns,
            seed: scenario.seed,
            wall,
            subscribe: cfg.subscribe.clone(),
            headers: cfg.headers.clone(),
            tls: tls.as_ref().map(|(_, fleet)| fleet.clone()),
            protocol: cfg.protocol,
            report_rss_baseline: exe.is_some(),
            fields: external_push.then(|| JsonFields {
                timestamp: cfg.timestamp_field.clone(),
                sequence: cfg.sequence_field.clone(),
            }),
            stall_real_us,
            poll: cfg.poll.clone(),
            shard: w.shard,
        };
        match &exe {
            Some(exe) => worker_procs.push(
                crate::websocket::workers::spawn_worker_process(exe, &spec, tx.clone()).map_err(
                    |e| RunError::Setup(format!("cannot start fleet worker process {worker}: {e}")),
                )?,
            ),
            None => handles.push(
                spawn_fleet_worker(spec, stop.clone(), Reporter::new(tx.clone(), worker))
                    .map_err(|e| RunError::Setup(format!("cannot start a fleet worker: {e}")))?,
            ),
        }
    }
    pipeline.add_generator_pids(worker_procs.iter().map(|p| p.pid().to_string()));
    let procs_done = Arc::new(AtomicBool::new(false));
    let forwarder = crate::websocket::workers::forward_stop(
        worker_procs.iter().map(|p| p.pid()).collect(),
        stop.clone(),
        procs_done.clone(),
    )
    .map_err(|e| RunError::Setup(format!("cannot start a thread: {e}")))?;
    let controller = match servers {
        Some(s) => Some(
            spawn_controller(ControllerPlan {
                controls: s.controls.clone(),
                publish: cfg.mode == WsMode::Push,
                schedule: schedule.clone(),
                ramp_start_mono,
                events_start_mono,
                warmup_end_real_us,
                payload_bytes: w.payload_bytes,
                wall,
                drop: drop_fault,
                stall,
                finish_at_mono: close_at_mono,
                max_wait_ns: cfg.max_wait_ns,
                interval_ns,
                worker_id: workers,
                subscribers: w.subscribers,
                // The fallbacks resume where they were: an event stream after its last id, a
                // long poll from its cursor.
                replay: cfg.protocol != PushProtocol::WebSocket,
                stop: stop.clone(),
                tx: Reporter::new(tx.clone(), workers),
            })
            .map_err(|e| RunError::Setup(format!("cannot start the controller: {e}")))?,
        ),
        None => None,
    };
    drop(tx);

    let sources = workers as usize + usize::from(controller.is_some());
    let mut driver = WsDriver {
        peak_connections: 0,
        ramps_done: 0,
        ramp_done_mono: 0,
        gen_rss_at_peak: gen_rss_before,
        worker_rss_baseline: 0,
        last_delivery_mono: 0,
        target_rss_at_peak: target_rss_before,
        storm: IntervalStats::default(),
        tls: negotiated.is_some(),
    };
    let rec = pipeline
        .collect(&spec_p, ctx, sources, &mut rx, &stop, &mut driver)
        .await;
    procs_done.store(true, Ordering::Relaxed);
    let _ = forwarder.join();
    for h in handles {
        if h.join().is_err() {
            ctx.mark_incomplete("a WebSocket fleet worker panicked".into());
        }
    }
    for p in worker_procs {
        p.wait();
    }
    let server_stats = controller
        .and_then(|c| c.join().ok())
        .and_then(|r| match r {
            Ok(s) => Some(s),
            Err(e) => {
                ctx.warn(format!("websocket controller: {e}"));
                None
            }
        });
    let rec = rec?;

    let g = &rec.measured;
    let all = &rec.all;
    let duration_s = w.duration_ns as f64 / 1e9;
    // A run cut short (Ctrl-C, a worker that died) measured only until it stopped.
    let measured_s = match ctx.cut_short_at() {
        Some(at) => (at.saturating_sub(events_start_mono + w.warmup_ns) as f64 / 1e9)
            .clamp(1e-9, duration_s),
        None => duration_s,
    };
    let scheduled = if cfg.mode == WsMode::Idle || external_push {
        0
    } else {
        w.measured_deliveries(scenario.seed)
    };
    let events = if cfg.mode == WsMode::Idle {
        0
    } else if external_push {
        // What arrived plus what the sequence numbers say is missing.
        g.get(Counter::Delivered) + g.get(Counter::Gaps)
    } else {
        g.get(Counter::Offered)
    };
    let delivered = g.get(Counter::Delivered).min(events);
    let ramp_s = if driver.ramps_done >= workers {
        driver.ramp_done_mono.saturating_sub(ramp_start_mono) as f64 / 1e9
    } else {
        0.0
    };
    let per_conn = |rss: u64, before: u64| {
        if driver.peak_connections == 0 {
            0.0
        } else {
            rss.saturating_sub(before) as f64 / driver.peak_connections as f64
        }
    };
    let mut errors = std::collections::BTreeMap::new();
    for kind in ErrorKind::ALL {
        errors.insert(kind.name().to_string(), all.errors(kind));
    }
    let storm = &driver.storm;
    let recovery_s = match (storm.first_loss_mono, storm.down_at_close) {
        (0, _) => 0.0,
        // Never all back: the outage lasted at least until the run closed the connections.
        (lost, down) if down > 0 => close_at_mono.saturating_sub(lost) as f64 / 1e9,
        (lost, _) => storm.recovered_mono.saturating_sub(lost) as f64 / 1e9,
    };
    let target_rate = scheduled as f64 / duration_s;
    let common = rec.common(cfg.protocol.model());
    let saturation = if cfg.mode == WsMode::Idle || external_push {
        // Nothing is offered by the harness: the connections are the load.
        Saturation {
            reason: format!(
                "{}: {} of {} connections held",
                if external_push {
                    "the external server publishes"
                } else {
                    "idle"
                },
                driver.peak_connections,
                subs
            ),
            ..Saturation::default()
        }
    } else {
        saturation::judge(&SendFigures {
            dropped: g.get(Counter::Unfinished),
            // Blocked time after the window (the drain) counts too: clamp to the whole window.
            target_pushback: Some(
                (g.get(Counter::PublishBlockedNs) as f64 / 1e9 / measured_s.max(1e-9)).min(1.0),
            ),
            ..rec.send_figures(
                (!matches!(w.shape, crate::schedule::Shape::Max)).then_some(target_rate),
                measured_s,
                // Fleet workers plus the controller that publishes.
                (workers + 1) as f64,
                servers.is_some_and(|s| !s.pids.is_empty()),
            )
        })
    };
    let mut summary = ModelSummary {
        target_rate,
        // Completions while the measured window was open; over the time the deliveries
        // really took when no whole interval fits: a backlog drained after the schedule ended
        // does not count as keeping up.
        achieved_rate: rec.window.rate().unwrap_or(
            delivered as f64
                / measured_s.max(
                    driver
                        .last_delivery_mono
                        .saturating_sub(events_start_mono + w.warmup_ns) as f64
                        / 1e9,
                ),
        ),
        events,
        delivered,
        failed: events - delivered,
        abandoned: 0,
        endpoints_gone: 0,
        unfinished: g.get(Counter::Unfinished),
        dropped: g.get(Counter::Dropped),
        retries: 0,
        attempts_per_event: Percentiles::default(),
        attempts_histogram: Vec::new(),
        duplicates: g.get(Counter::Reordered),
        latency_source: match cfg.mode {
            WsMode::Push if external_push && cfg.timestamp_field.is_none() => {
                "none (no timestamp_field)"
            }
            WsMode::Push if external_push => "client, from the message's timestamp_field",
            WsMode::Push if cfg.protocol == PushProtocol::Sse => "client (event parsed)",
            WsMode::Push if cfg.protocol == PushProtocol::LongPoll => "client (answer read)",
            WsMode::Push => "client (pushed frame received)",
            WsMode::Echo => "client (echo received)",
            WsMode::Idle => "none (idle)",
        }
        .into(),
        connections: Connections {
            target: subs,
            reconnects: all.get(Counter::Reconnects),
            ..common.connections
        },
        bytes_per_event: if delivered > 0 {
            (all.get(Counter::BytesIn) + all.get(Counter::BytesOut)) as f64 / delivered as f64
        } else {
            0.0
        },
        errors,
        receiver: None,
        websocket: Some(WsSummary {
            mode: cfg.mode.name().into(),
            gaps: g.get(Counter::Gaps),
            reordered: g.get(Counter::Reordered),
            unrouted: g.get(Counter::Dropped),
            server_closes: all.get(Counter::ServerCloses),
            close_codes: [
                ("1000", Counter::Close1000),
                ("1001", Counter::Close1001),
                ("1008", Counter::Close1008),
                ("1009", Counter::Close1009),
                ("1011", Counter::Close1011),
                ("other", Counter::CloseOther),
            ]
            .into_iter()
            .map(|(name, c)| (name.to_string(), all.get(c)))
            .collect(),
            disconnects: all.get(Counter::Disconnects),
            pongs_missed: all.get(Counter::PongsMissed),
            reconnect_attempts: all.get(Counter::ReconnectAttempts),
            recovery_s: (recovery_s * 1000.0).round() / 1000.0,
            down_at_end: storm.down_at_close,
            backlog_latency_us: Percentiles::of(&g.backlog),
            pong_rtt_us: Percentiles::of(&all.rtt),
            ramp_s,
            connects_per_s: if ramp_s > 0.0 {
                subs as f64 / ramp_s
            } else {
                0.0
            },
            memory_per_connection_bytes: PerConnection {
                generator: per_conn(
                    driver.gen_rss_at_peak,
                    gen_rss_before + driver.worker_rss_baseline,
                ),
                target: per_conn(driver.target_rss_at_peak, target_rss_before),
            },
            fleet_workers: workers,
            server_processes: servers.map_or(0, |s| s.controls.len() as u64),
            server: server_stats,
            replayed: all.get(Counter::Replayed),
            polling: cfg.poll.as_ref().map(|p| {
                let polls = g.get(Counter::Polls);
                let empty = g.get(Counter::EmptyPolls);
                PollFigures {
                    connection: if p.fresh { "fresh" } else { "keepalive" }.into(),
                    hold_s: p.hold_ns as f64 / 1e9,
                    polls,
                    polls_per_event: if delivered > 0 {
                        polls as f64 / delivered as f64
                    } else {
                        0.0
                    },
                    events_per_answer: match g.get(Counter::Answers) {
                        0 => 0.0,
                        answers => g.get(Counter::Delivered) as f64 / answers as f64,
                    },
                    empty_answers: empty,
                    bad_answers: all.errors(ErrorKind::BadResponse),
                }
            }),
        }),
        saturation,
        ..common
    };
    summary.tls = negotiated.map(|n| n.summary(all, cfg.tls.as_ref().is_some_and(|t| t.resume)));
    let mut metrics = vec![
        ("latency", &g.ack),
        ("uncorrected_latency", &g.ack_uncorrected),
        ("connect", &all.connect),
        ("pong_rtt", &all.rtt),
        ("backlog_latency", &g.backlog),
    ];
    if summary.tls.is_some() {
        metrics.push(("tls_handshake", &all.tls_handshake));
    }
    // Their figures under their own names: an event stream or a poll is no WebSocket.
    match cfg.protocol {
        PushProtocol::WebSocket => {}
        PushProtocol::Sse => summary.sse = summary.websocket.take(),
        PushProtocol::LongPoll => summary.longpoll = summary.websocket.take(),
    }
    if let Some(p) = &cfg.poll {
        let missing = all.get(Counter::MissingPointer);
        if missing > 0 {
            ctx.warn(format!(
                "{missing} long-poll answers had no array at `{}` (longpoll.events_field): their events were not counted",
                p.events_field
            ));
        }
    }
    write_percentiles(ctx, cfg.protocol.model(), &metrics)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_links_source_addresses_are_shared_out_without_overlap_while_they_last() {
        let sources: Vec<IpAddr> = (16..48u8)
            .map(|d| IpAddr::V4(Ipv4Addr::new(198, 18, 0, d)))
            .collect();
        // Four workers: eight addresses each, none shared, all used.
        let shares: Vec<Vec<IpAddr>> = (0..4).map(|w| link_share(&sources, w, 4)).collect();
        let mut all: Vec<IpAddr> = shares.iter().flatten().copied().collect();
        assert!(shares.iter().all(|s| s.len() == 8));
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 32);
        // More workers than addresses: one each, every worker has one.
        for w in 0..40 {
            assert_eq!(link_share(&sources, w, 40).len(), 1, "worker {w}");
        }
    }
}
