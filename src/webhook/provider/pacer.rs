//! The pacer: one wake of it ([`Pacer::step`]) queues what is due, drops what waited too long
//! or found the backlog full (counted in bulk), moves due retries on, hands each interval's
//! records over and ends the run at its deadline. The tokio workers call it from their pacer
//! task, the epoll loop from its own loop; both share the queue in [`Local`].

use std::cell::Cell;
use std::cmp::Reverse;
use std::sync::atomic::Ordering;

use super::{Job, Local, WorkerPlan, BUSY_TICK_NS, STOP_GRACE_NS};
use crate::clock::{mono_ns, MIN_WAKE_GAP_NS};
use crate::record::{Counter, IntervalStats, WorkerReport, MEASURED, WARMUP};

/// The pacer's place in the schedule and in the run, between its wakes.
pub(in crate::webhook) struct Pacer<'a> {
    deliveries: std::iter::Peekable<Box<dyn Iterator<Item = crate::schedule::Delivery> + 'a>>,
    start: u64,
    interval: u64,
    next_flush: u64,
    deadline: u64,
    stopping: bool,
}

impl<'a> Pacer<'a> {
    pub(in crate::webhook) fn new(plan: &'a WorkerPlan) -> Self {
        let start = plan.start_mono;
        let deliveries: Box<dyn Iterator<Item = _>> =
            Box::new(plan.schedule.deliveries(plan.worker, plan.workers));
        Self {
            deliveries: deliveries.peekable(),
            start,
            interval: 0,
            next_flush: start + plan.interval_ns,
            deadline: start + plan.schedule.total_ns + plan.spec.drain_ns,
            stopping: false,
        }
    }

    /// One wake at `now`: hands over finished intervals, notices a stop, queues what is due
    /// (first attempts and retries) and ends the run at its deadline. Returns how many
    /// deliveries it queued and when it wants to look again, or `None` once the worker's
    /// share is done (then call [`finish`](Self::finish)).
    pub(in crate::webhook) fn step(
        &mut self,
        local: &Local,
        plan: &WorkerPlan,
        now: u64,
    ) -> (usize, Option<u64>) {
        local.pacer_now.set(now);
        while now >= self.next_flush {
            flush(local, plan, self.interval, false);
            self.interval += 1;
            self.next_flush += plan.interval_ns;
        }
        if !self.stopping && plan.stop.load(Ordering::Relaxed) {
            self.stopping = true;
            local.stopping.set(true);
            self.deadline = self.deadline.min(now + STOP_GRACE_NS);
        }
        let mut pushed = 0usize;
        if !self.stopping {
            pushed += queue_due(local, &mut self.deliveries, self.start, now);
        }
        {
            let mut ready = local.retry_ready.borrow_mut();
            let mut retries = local.retries.borrow_mut();
            while retries.peek().is_some_and(|Reverse((due, _))| *due <= now) {
                let Reverse((_, job)) = retries.pop().expect("peeked");
                ready.push_back(job);
                pushed += 1;
            }
        }
        let closed_loop_on = local.max_end.is_some_and(|end| now < end);
        let exhausted = self.stopping || (self.deliveries.peek().is_none() && !closed_loop_on);
        let idle = local.ready.borrow().is_empty()
            && local.retry_ready.borrow().is_empty()
            && local.retries.borrow().is_empty()
            && local.in_flight.iter().all(|c| c.get() == 0);
        if exhausted && idle {
            return (pushed, None);
        }
        if now >= self.deadline {
            abandon(local);
            return (pushed, None);
        }
        let mut next = self.next_flush.min(self.deadline);
        if let Some(d) = self.deliveries.peek() {
            // With every slot busy, a delivery queued at its instant would only wait in the
            // queue: look again in a millisecond (or when a slot goes idle) instead.
            let due = self.start + d.intended_ns;
            next = next.min(if local.idle_slots.get() > 0 {
                due
            } else {
                due.max(now + BUSY_TICK_NS)
            });
        }
        if let Some(end) = local.max_end.filter(|_| closed_loop_on) {
            next = next.min(end);
        }
        if let Some(Reverse((due, _))) = local.retries.borrow().peek() {
            next = next.min(*due);
        }
        if exhausted {
            // Draining: look again soon rather than waiting for a whole interval.
            next = next.min(now + 5_000_000);
        }
        // Never ready at once: the slots on this thread get their turn between wakes.
        (pushed, Some(next.max(mono_ns() + MIN_WAKE_GAP_NS)))
    }

    /// The last hand-over, once [`step`](Self::step) has said the share is done.
    pub(in crate::webhook) fn finish(&self, local: &Local, plan: &WorkerPlan) {
        local.done.set(true);
        flush(local, plan, self.interval, true);
    }
}

/// Queues every delivery whose intended time has come. Open loop: one that cannot be queued
/// (the backlog is full) or has already waited longer than `max_wait` is dropped and counted,
/// never waited on, and the queue's stale head goes the same way. Counters are added once per
/// call, not once per delivery. Returns how many were queued.
fn queue_due(
    local: &Local,
    deliveries: &mut std::iter::Peekable<impl Iterator<Item = crate::schedule::Delivery>>,
    start: u64,
    now: u64,
) -> usize {
    let mut tally = Tally::default();
    let oldest = now.saturating_sub(local.spec.max_wait_ns);
    let mut ready = local.ready.borrow_mut();
    while let Some(job) = ready.pop_front_if(|j| j.intended < oldest) {
        tally.dropped[local.phase(&job)] += 1;
    }
    let room = local
        .spec
        .max_backlog_per_worker
        .saturating_sub(ready.len());
    let mut queued = 0;
    while let Some(d) = deliveries.next_if(|d| start + d.intended_ns <= now) {
        let job = Job {
            intended: start + d.intended_ns,
            index: d.index,
            subscriber: d.subscriber,
            attempt: 0,
        };
        let phase = local.phase(&job);
        tally.offered[phase] += 1;
        if queued < room && job.intended >= oldest {
            ready.push_back(job);
            queued += 1;
        } else {
            tally.dropped[phase] += 1;
        }
    }
    tally.add_to(&mut local.stats.borrow_mut());
    queued
}

/// The oldest queued first attempt that may still start; those that waited too long are
/// dropped on the way.
pub(super) fn take_fresh(local: &Local, now: u64) -> Option<Job> {
    let oldest = now.saturating_sub(local.spec.max_wait_ns);
    let mut ready = local.ready.borrow_mut();
    let mut tally = Tally::default();
    let job = loop {
        match ready.pop_front() {
            Some(job) if job.intended < oldest => tally.dropped[local.phase(&job)] += 1,
            other => break other,
        }
    };
    tally.add_to(&mut local.stats.borrow_mut());
    job
}

/// Offered and dropped deliveries by phase, counted in bulk.
#[derive(Default)]
struct Tally {
    offered: [u64; 2],
    dropped: [u64; 2],
}

impl Tally {
    fn add_to(&self, stats: &mut IntervalStats) {
        if self.offered == [0; 2] && self.dropped == [0; 2] {
            return;
        }
        for phase in [WARMUP, MEASURED] {
            let p = &mut stats.phases[phase];
            p.bump(Counter::Offered, self.offered[phase]);
            p.bump(Counter::Dropped, self.dropped[phase]);
            p.bump(Counter::Failed, self.dropped[phase]);
            p.record_attempts(0, self.dropped[phase]);
        }
    }
}

/// Counts whatever is still queued, waiting to retry or in flight as failed and unfinished.
fn abandon(local: &Local) {
    let mut stats = local.stats.borrow_mut();
    let mut unfinished = |job: &Job, attempts: u32| {
        let p = &mut stats.phases[local.phase(job)];
        p.bump(Counter::Failed, 1);
        p.bump(Counter::Unfinished, 1);
        p.record_attempts(attempts, 1);
    };
    // Queued jobs have made `attempt` attempts so far; the next one never started.
    for job in local.ready.borrow_mut().drain(..) {
        unfinished(&job, job.attempt);
    }
    for job in local.retry_ready.borrow_mut().drain(..) {
        unfinished(&job, job.attempt);
    }
    for Reverse((_, job)) in local.retries.borrow_mut().drain() {
        unfinished(&job, job.attempt);
    }
    for (phase, by_attempt) in local.in_flight_attempts.borrow().iter().enumerate() {
        let p = &mut stats.phases[phase];
        for (attempts, &n) in by_attempt.iter().enumerate() {
            p.bump(Counter::Failed, n);
            p.bump(Counter::Unfinished, n);
            p.record_attempts(attempts as u32, n);
        }
    }
}

fn flush(local: &Local, plan: &WorkerPlan, interval: u64, last: bool) {
    let mut stats = std::mem::take(&mut *local.stats.borrow_mut());
    stats.open_connections = local.open_conns.get();
    stats.peak_connections = local.peak_conns.replace(local.open_conns.get());
    stats.backlog = (local.ready.borrow().len()
        + local.retry_ready.borrow().len()
        + local.retries.borrow().len()) as u64
        + local.in_flight.iter().map(Cell::get).sum::<u64>();
    // The collector may have gone (run aborted); then there is no one to tell.
    plan.tx.send(WorkerReport {
        worker: plan.worker,
        interval,
        stats,
        last,
        died: false,
    });
}
