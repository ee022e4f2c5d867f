//! The recording pipeline every delivery model runs through, written once: it collects the
//! workers' interval reports, merges each interval when every worker has sent it, meters the
//! generator's and the target's CPU and memory, writes the `timeseries.csv` row and the model's
//! interval log (`<model>.hlog`) as each interval closes, shows progress, handles Ctrl-C and
//! SIGTERM, and keeps the run's totals. A model is a driver: it starts its workers, says what
//! one interval means for it ([`Driver::interval`]: its headline latency, its failure counts,
//! the histograms it logs) and builds its own summary from the [`Recording`].

use std::fs::File;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use tokio::sync::mpsc::UnboundedReceiver;

use super::context::{RunContext, RunError};
use super::progress::Progress;
use super::signals::Interrupts;
use crate::clock::{mono_ns, WallMap};
use crate::model_kind::ModelKind;
use crate::record::collect::Collector;
use crate::record::resources::{HostMeter, RoleMeter};
use crate::record::results::{
    percentile_rows, Connections, ModelSummary, Resources, RoleCost, TimeseriesRow,
};
use crate::record::saturation::SendFigures;
use crate::record::{
    CompletionWindow, Counter, IntervalStats, Percentiles, PhaseStats, WorkerReport, MEASURED,
    WARMUP,
};

/// What the pipeline needs to know about a model's run before its workers start.
pub struct PipelineSpec<'a> {
    /// Which model.
    pub model: ModelKind,
    /// Interval 0 starts at this monotonic instant; so does the interval log.
    pub base_mono: u64,
    /// Wall-clock mapping of the run.
    pub wall: WallMap,
    /// Seconds from `base_mono` to the run's end, for progress.
    pub total_s: f64,
    /// The measured window, in seconds from `base_mono`.
    pub window_s: (f64, f64),
    /// Process IDs of the target's processes (none: in-process or external).
    pub target_pids: &'a [u32],
    /// The emulated link's pump thread (in this process), metered as the `link` role.
    pub link_tid: Option<i32>,
    /// Hand freed memory back to the OS before each interval's memory reading, so RSS shows
    /// what held connections really keep (glibc otherwise caches it in its arenas).
    pub trim_heap: bool,
    /// Write each row when the next one closes, so the last row can carry failures only the
    /// end of the run reveals (see [`Driver::unaccounted`]).
    pub last_row_carries_rest: bool,
}

/// One closed interval, as a driver sees it.
pub struct Closed<'a> {
    /// Interval index.
    pub k: u64,
    /// Its end, in seconds from the base instant (the run's clock when it closed early).
    pub end_s: f64,
    /// The merged reports of every worker.
    pub stats: &'a IntervalStats,
    /// The generator's memory at the interval's end (bytes).
    pub gen_rss: u64,
    /// The target's memory at the interval's end (bytes).
    pub target_rss: u64,
}

/// What one interval means for a model.
pub struct IntervalFigures {
    /// The latency the time series shows (both phases).
    pub headline: Histogram<u64>,
    /// Errors of any kind in the interval.
    pub errors: u64,
    /// Deliveries that ended without being delivered.
    pub failed: u64,
    /// Of those, the ones never attempted.
    pub dropped: u64,
    /// Retries (webhook) or reconnects (WebSocket).
    pub retries: u64,
    /// Deliveries given up on purpose (410 Gone).
    pub abandoned: u64,
    /// The interval log's histograms for this interval, by tag.
    pub logged: Vec<(&'static str, Histogram<u64>)>,
}

/// A delivery model, as the pipeline drives it.
pub trait Driver {
    /// Reads one closed interval (and anything the model adds to it, such as the receiver's
    /// own histograms) and says what goes in its row and its interval log.
    fn interval(&mut self, closed: &Closed<'_>, ctx: &mut RunContext) -> IntervalFigures;

    /// Failures the rows have not counted by the end, given the run's totals; the last row
    /// carries them when [`PipelineSpec::last_row_carries_rest`] is set.
    fn unaccounted(&self, _all: &PhaseStats, _rows_failed: u64) -> u64 {
        0
    }
}

/// What the pipeline kept of a model's run.
pub struct Recording {
    /// Totals over the measured phase.
    pub measured: PhaseStats,
    /// Totals over both phases (connections are opened during warm-up and held).
    pub all: PhaseStats,
    /// Completions and first sends inside the measured window.
    pub window: CompletionWindow,
    /// The most connections open at an interval's end.
    pub peak_connections: u64,
    /// The generator's meter (this process and any worker processes).
    pub gen_meter: RoleMeter,
    /// The target's meter.
    pub target_meter: RoleMeter,
    /// The emulated link's meter, when there is one.
    pub link_meter: Option<RoleMeter>,
    /// The machine's CPU meter over the run.
    pub host_meter: HostMeter,
    /// Memory before any load: generator and target (bytes).
    pub rss_before: (u64, u64),
    /// Seconds from the base instant to the end of the collection.
    pub run_s: f64,
}

impl Recording {
    /// The part of a model's summary entry every model fills the same way: latency from the
    /// measured acks, connects over the whole run, schedule lag, late sends, the connection
    /// counts and what each role cost. A model sets the rest (and overrides what it measures
    /// otherwise) with `ModelSummary { ..., ..recording.common(model) }`.
    pub fn common(&self, model: ModelKind) -> ModelSummary {
        let (g, all) = (&self.measured, &self.all);
        ModelSummary {
            model,
            late_sends: g.get(Counter::LateSends),
            latency_us: Percentiles::of(&g.ack),
            uncorrected_latency_us: Percentiles::of(&g.ack_uncorrected),
            ack_latency_us: Percentiles::of(&g.ack),
            // The ack is timed from the intended time of the first attempt, so it is the time
            // to delivery with retries included.
            time_to_delivery_us: Percentiles::of(&g.ack),
            ack_uncorrected_latency_us: Percentiles::of(&g.ack_uncorrected),
            connect_us: Percentiles::of(&all.connect),
            tls_handshake_us: Percentiles::of(&all.tls_handshake),
            schedule_lag_us: Percentiles::of(&g.lag),
            connections: Connections {
                peak: self.peak_connections,
                opened: all.get(Counter::Connects),
                failed: all.get(Counter::ConnectErrors),
                ..Connections::default()
            },
            resources: Resources {
                generator: self.gen_meter.cost(),
                target: self.target_meter.cost(),
                // A thread of this process: its memory is the generator's.
                link: self.link_meter.as_ref().map(|m| RoleCost {
                    cpu_s: m.cpu_s(),
                    peak_rss_bytes: 0,
                }),
            },
            ..ModelSummary::default()
        }
    }

    /// What every model tells the saturation judge the same way: first sends per second in
    /// the measured window (over `measured_s` when no whole interval fits), and the CPU of the
    /// generator (`gen_cores_usable` threads and processes), of a measured target, and of the
    /// machine. The model adds its own (`dropped`, lag, pool, pushback).
    pub fn send_figures(
        &self,
        offered_per_s: Option<f64>,
        measured_s: f64,
        gen_cores_usable: f64,
        target_measured: bool,
    ) -> SendFigures {
        let cpu = |cost: RoleCost| cost.cpu_s / self.run_s;
        SendFigures {
            offered_per_s,
            sent_per_s: self
                .window
                .sent_rate()
                .unwrap_or(self.measured.get(Counter::Sent) as f64 / measured_s.max(1e-9)),
            lag_p99_us: Percentiles::of(&self.measured.lag).p99,
            gen_cpu_cores: cpu(self.gen_meter.cost()),
            gen_cores_usable,
            host_busy_cores: self.host_meter.busy_cores(),
            // An in-process target (tests) is not measured apart from the generator.
            target_cpu_cores: target_measured.then(|| cpu(self.target_meter.cost())),
            host_cores: self.host_meter.cores(),
            ..SendFigures::default()
        }
    }
}

/// The pipeline of one model's run, between its start and its workers' start.
pub struct Pipeline {
    gen_meter: RoleMeter,
    target_meter: RoleMeter,
    link_meter: Option<RoleMeter>,
    host_meter: HostMeter,
    rss_before: (u64, u64),
}

impl Pipeline {
    /// Starts the meters (before the workers, so their start is metered).
    pub fn start(spec: &PipelineSpec<'_>) -> Self {
        let link = spec.link_tid.map(|tid| format!("self/task/{tid}"));
        let mut gen_meter =
            RoleMeter::new(vec!["self".into()]).without(link.iter().cloned().collect());
        let mut target_meter = RoleMeter::of_pids(spec.target_pids);
        let mut link_meter = link.map(|l| RoleMeter::new(vec![l]));
        let (_, gen_rss) = gen_meter.tick(0.0);
        let (_, target_rss) = target_meter.tick(0.0);
        if let Some(m) = &mut link_meter {
            m.tick(0.0);
        }
        Self {
            gen_meter,
            target_meter,
            link_meter,
            host_meter: HostMeter::start(),
            rss_before: (gen_rss, target_rss),
        }
    }

    /// Memory before any load: generator and target (bytes).
    pub fn rss_before(&self) -> (u64, u64) {
        self.rss_before
    }

    /// Meters these processes (worker processes of this binary) as part of the generator.
    pub fn add_generator_pids(&mut self, pids: impl IntoIterator<Item = String>) {
        self.gen_meter.add_pids(pids);
    }

    /// Collects the reports of `sources` workers (numbered `0..sources`) until all have sent their last (or the run is
    /// interrupted), closing intervals as they complete. Workers that stop reporting before
    /// their last report (a thread that panicked, a process that died) are recorded in
    /// `ctx.incomplete`: the run then ends with exit 3, with the results so far.
    pub async fn collect(
        self,
        spec: &PipelineSpec<'_>,
        ctx: &mut RunContext,
        sources: usize,
        rx: &mut UnboundedReceiver<WorkerReport>,
        stop: &AtomicBool,
        driver: &mut impl Driver,
    ) -> Result<Recording, RunError> {
        let model = spec.model;
        let Pipeline {
            mut gen_meter,
            mut target_meter,
            mut link_meter,
            host_meter,
            rss_before,
        } = self;
        // Unbuffered: what was logged is on disk even if the process is killed.
        let mut hlog_file =
            File::create(ctx.dir.join(format!("{model}.hlog"))).map_err(RunError::Io)?;
        let mut serializer = V2DeflateSerializer::new();
        let base =
            SystemTime::UNIX_EPOCH + Duration::from_nanos(spec.wall.to_real_ns(spec.base_mono));
        let mut hlog = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "pushbench {model} model; values in microseconds; tags name the metric"
            ))
            .with_start_time(base)
            .with_base_time(base)
            .begin_log_with(&mut hlog_file, &mut serializer)
            .map_err(RunError::Io)?;

        let interval_ns = ctx.interval_ns;
        let mut measured = PhaseStats::new();
        let mut all = PhaseStats::new();
        let mut window = CompletionWindow::new(spec.window_s.0, spec.window_s.1);
        let mut peak_connections = 0;
        let mut pending_row: Option<TimeseriesRow> = None;
        let mut rows_failed = 0u64;
        let mut collector = Collector::new(sources);
        let mut progress = Progress::new(ctx.progress, spec.total_s, model);
        let mut interrupts = Interrupts::default();
        let elapsed_s = || mono_ns().saturating_sub(spec.base_mono) as f64 / 1e9;
        let mut died_at_s = None;
        loop {
            let report = interrupts.next_report(rx, ctx, stop, &progress).await;
            let gone = report.is_none();
            let closed = match report {
                Some(report) => {
                    if report.died && !stop.swap(true, Ordering::Relaxed) {
                        ctx.mark_stopped();
                        // The rest wind down as on Ctrl-C; the run ends incomplete.
                        died_at_s.get_or_insert(elapsed_s());
                        progress.note(&format!(
                            "a {model} worker died: stopping, writing results so far"
                        ));
                    }
                    collector.push(report)
                }
                // Every worker is gone: what the missing ones never closed closes now.
                None => collector.drain(),
            };
            for (k, stats) in closed {
                let end_s = ((k + 1) as f64 * interval_ns as f64 / 1e9).min(elapsed_s());
                if spec.trim_heap {
                    crate::record::resources::trim_heap();
                }
                let (gen_cpu, gen_rss) = gen_meter.tick(end_s);
                let (target_cpu, target_rss) = target_meter.tick(end_s);
                if let Some(m) = &mut link_meter {
                    m.tick(end_s);
                }
                let figures = driver.interval(
                    &Closed {
                        k,
                        end_s,
                        stats: &stats,
                        gen_rss,
                        target_rss,
                    },
                    ctx,
                );
                measured.add(&stats.phases[MEASURED]);
                all.add(&stats.phases[WARMUP]);
                all.add(&stats.phases[MEASURED]);
                peak_connections = peak_connections
                    .max(stats.open_connections)
                    .max(stats.peak_connections);
                window.add((k * interval_ns) as f64 / 1e9, end_s, &stats);

                let h = &figures.headline;
                let q = |v: f64| {
                    if h.is_empty() {
                        0
                    } else {
                        h.value_at_quantile(v)
                    }
                };
                let row = TimeseriesRow {
                    t_s: (end_s * 1000.0).round() / 1000.0,
                    model,
                    offered: stats.total(Counter::Offered),
                    sent: stats.total(Counter::Sent),
                    delivered: stats.total(Counter::Delivered),
                    errors: figures.errors,
                    retries: figures.retries,
                    abandoned: figures.abandoned,
                    failed: figures.failed,
                    dropped: figures.dropped,
                    connections: stats.open_connections,
                    p50_us: q(0.5),
                    p99_us: q(0.99),
                    max_us: h.max(),
                    gen_cpu_pct: (gen_cpu * 10.0).round() / 10.0,
                    gen_rss_bytes: gen_rss,
                    target_cpu_pct: (target_cpu * 10.0).round() / 10.0,
                    target_rss_bytes: target_rss,
                };
                rows_failed += row.failed;
                progress.update(end_s, &row, stats.backlog, measured.get(Counter::Delivered));
                if spec.last_row_carries_rest {
                    if let Some(previous) = pending_row.replace(row) {
                        write_row(ctx, &previous)?;
                    }
                } else {
                    write_row(ctx, &row)?;
                }

                let start = Duration::from_nanos(k * interval_ns);
                let len = Duration::from_secs_f64((end_s - start.as_secs_f64()).max(0.0));
                for (tag, h) in &figures.logged {
                    hlog.write_histogram(h, start, len, Tag::new(tag))
                        .map_err(|e| RunError::Io(std::io::Error::other(format!("{e:?}"))))?;
                }
            }
            if gone || collector.all_done() {
                break;
            }
        }
        progress.finish();
        drop(hlog);
        if let Some(mut row) = pending_row {
            row.failed += driver.unaccounted(&all, rows_failed);
            write_row(ctx, &row)?;
        }
        let silent = collector.unfinished();
        if silent > 0 && !ctx.interrupted.load(Ordering::Relaxed) {
            let when = died_at_s.map_or(String::new(), |s| format!(" at {s:.1}s"));
            ctx.mark_incomplete(format!(
                "{silent} of {sources} {model} workers stopped reporting before the run \
                 ended (a worker died{when}); the run stopped there and the figures cover \
                 what was reported until then"
            ));
        }
        Ok(Recording {
            measured,
            all,
            window,
            peak_connections,
            gen_meter,
            target_meter,
            link_meter,
            host_meter,
            rss_before,
            run_s: elapsed_s().max(1e-3),
        })
    }
}

fn write_row(ctx: &mut RunContext, row: &TimeseriesRow) -> Result<(), RunError> {
    ctx.timeseries
        .serialize(row)
        .map_err(|e| RunError::Io(e.into()))?;
    ctx.timeseries.flush().map_err(RunError::Io)
}

/// Appends a model's final distributions to `percentiles.csv`, by metric name.
pub fn write_percentiles(
    ctx: &mut RunContext,
    model: ModelKind,
    metrics: &[(&str, &Histogram<u64>)],
) -> Result<(), RunError> {
    for (metric, h) in metrics {
        percentile_rows(&mut ctx.percentiles, model, metric, h).map_err(RunError::Io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::new_hist;
    use crate::run::context::ProgressMode;
    use crate::servers::launch::TargetLaunch;
    use std::sync::Arc;

    struct Counting;

    impl Driver for Counting {
        fn interval(&mut self, c: &Closed<'_>, _ctx: &mut RunContext) -> IntervalFigures {
            IntervalFigures {
                headline: new_hist(),
                errors: 0,
                failed: c.stats.total(Counter::Failed),
                dropped: 0,
                retries: 0,
                abandoned: 0,
                logged: vec![("latency", c.stats.merged(|p| &p.ack))],
            }
        }
    }

    fn context(dir: &std::path::Path) -> RunContext {
        RunContext {
            dir: dir.to_path_buf(),
            launch: TargetLaunch::InProcess,
            progress: ProgressMode::Off,
            interval_ns: 1_000_000_000,
            interrupted: Arc::new(AtomicBool::new(false)),
            stopped_mono: Default::default(),
            timeseries: crate::record::results::timeseries_writer(dir).unwrap(),
            percentiles: crate::record::results::percentiles_writer(dir).unwrap(),
            warnings: Vec::new(),
            incomplete: None,
        }
    }

    fn report(worker: u64, interval: u64, delivered: u64, last: bool) -> WorkerReport {
        WorkerReport::delivering(worker, interval, delivered, last)
    }

    async fn collect(reports: Vec<WorkerReport>) -> (RunContext, Recording, Vec<TimeseriesRow>) {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = context(dir.path());
        let spec = PipelineSpec {
            model: ModelKind::Webhook,
            base_mono: mono_ns(),
            wall: WallMap::now(),
            total_s: 2.0,
            window_s: (0.0, 2.0),
            target_pids: &[],
            link_tid: None,
            trim_heap: false,
            last_row_carries_rest: false,
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for r in reports {
            tx.send(r).unwrap();
        }
        // The senders are gone, as when every worker thread has ended (or died).
        drop(tx);
        let stop = AtomicBool::new(false);
        let rec = Pipeline::start(&spec)
            .collect(&spec, &mut ctx, 2, &mut rx, &stop, &mut Counting)
            .await
            .unwrap();
        ctx.timeseries.flush().unwrap();
        let rows = csv::Reader::from_path(dir.path().join("timeseries.csv"))
            .unwrap()
            .deserialize()
            .map(Result::unwrap)
            .collect();
        (ctx, rec, rows)
    }

    #[tokio::test]
    async fn a_worker_that_stops_reporting_marks_the_run_incomplete_and_loses_no_interval() {
        // Worker 1 reports interval 0 and then dies; worker 0 runs to its end.
        let (ctx, rec, rows) = collect(vec![
            report(0, 0, 5, false),
            report(1, 0, 7, false),
            report(0, 1, 6, true),
        ])
        .await;
        let why = ctx.incomplete.expect("the run is marked incomplete");
        assert!(why.contains("1 of 2 webhook workers"), "{why}");
        assert_eq!(rec.measured.get(Counter::Delivered), 18);
        let delivered: Vec<u64> = rows.iter().map(|r| r.delivered).collect();
        assert_eq!(delivered, vec![12, 6]);
    }

    #[tokio::test]
    async fn workers_that_all_finish_leave_the_run_complete() {
        let (ctx, rec, rows) = collect(vec![
            report(0, 0, 5, false),
            report(1, 0, 7, true),
            report(0, 1, 6, true),
        ])
        .await;
        assert_eq!(ctx.incomplete, None);
        assert_eq!(rec.measured.get(Counter::Delivered), 18);
        assert_eq!(rows.len(), 2);
    }
}
