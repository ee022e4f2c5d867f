//! Merging interval reports from several workers: an interval is complete once every worker
//! has reported it or has finished, and completed intervals come out in order.

use std::collections::BTreeMap;

use super::{IntervalStats, WorkerReport};

/// Merges reports as they arrive.
#[derive(Debug)]
pub struct Collector {
    pending: BTreeMap<u64, IntervalStats>,
    reported_upto: Vec<Option<u64>>,
    finished: Vec<bool>,
    died: Vec<bool>,
    emitted_upto: Option<u64>,
}

impl Collector {
    /// For `workers` reporting sources, numbered `0..workers`.
    pub fn new(workers: usize) -> Self {
        Self {
            pending: BTreeMap::new(),
            reported_upto: vec![None; workers],
            finished: vec![false; workers],
            died: vec![false; workers],
            emitted_upto: None,
        }
    }

    /// Adds a report; returns the intervals it completed, in order.
    pub fn push(&mut self, report: WorkerReport) -> Vec<(u64, IntervalStats)> {
        let w = report.worker as usize;
        if report.died {
            // It will never report again: the intervals it held open close without it.
            self.died[w] = true;
            self.finished[w] = true;
            return self.complete();
        }
        self.reported_upto[w] = Some(report.interval);
        self.finished[w] |= report.last;
        // A report for an interval already handed out joins the next one, never re-opens it.
        let k = match self.emitted_upto {
            Some(e) if report.interval <= e => e + 1,
            _ => report.interval,
        };
        self.pending.entry(k).or_default().add(&report.stats);
        self.complete()
    }

    /// The intervals every worker has now reported (or finished), in order.
    fn complete(&mut self) -> Vec<(u64, IntervalStats)> {
        let mut done = Vec::new();
        while let Some((&k, _)) = self.pending.first_key_value() {
            let complete = (0..self.finished.len())
                .all(|i| self.finished[i] || self.reported_upto[i].is_some_and(|r| r >= k));
            if !complete {
                break;
            }
            done.push((k, self.pending.remove(&k).expect("first key")));
            self.emitted_upto = Some(k);
        }
        done
    }

    /// Hands out every interval still waiting, in order: for when some worker will never
    /// report again (it died), so what the others reported is not lost.
    pub fn drain(&mut self) -> Vec<(u64, IntervalStats)> {
        let done: Vec<_> = std::mem::take(&mut self.pending).into_iter().collect();
        if let Some(&(k, _)) = done.last() {
            self.emitted_upto = Some(k);
        }
        done
    }

    /// Workers that did not send their last report: they died, or have not finished yet.
    pub fn unfinished(&self) -> usize {
        (0..self.finished.len())
            .filter(|&i| self.died[i] || !self.finished[i])
            .count()
    }

    /// True once every worker has sent its last report and everything was handed out.
    pub fn all_done(&self) -> bool {
        self.finished.iter().all(|f| *f) && self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Counter;

    fn report(worker: u64, interval: u64, delivered: u64, last: bool) -> WorkerReport {
        WorkerReport::delivering(worker, interval, delivered, last)
    }

    #[test]
    fn a_worker_that_dies_leaves_the_others_intervals_to_drain() {
        let mut c = Collector::new(2);
        assert!(c.push(report(0, 0, 5, false)).is_empty());
        assert!(c.push(report(0, 1, 6, true)).is_empty());
        // Worker 1 never reports: nothing completes, and the collector knows who is missing.
        assert_eq!(c.unfinished(), 1);
        assert!(!c.all_done());
        let drained = c.drain();
        let delivered: Vec<_> = drained
            .iter()
            .map(|(k, s)| (*k, s.total(Counter::Delivered)))
            .collect();
        assert_eq!(delivered, vec![(0, 5), (1, 6)]);
        assert!(c.drain().is_empty());
    }

    #[test]
    fn intervals_complete_in_order_once_every_worker_reported() {
        let mut c = Collector::new(2);
        assert!(c.push(report(0, 0, 5, false)).is_empty());
        assert!(c.push(report(0, 1, 6, false)).is_empty());
        let done = c.push(report(1, 0, 7, false));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1.total(Counter::Delivered), 12);
        // Worker 1 finishes with a late report for interval 0: it joins interval 1, which no
        // longer waits for worker 1.
        let done = c.push(report(1, 0, 1, true));
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].0, done[0].1.total(Counter::Delivered)), (1, 7));
        let done = c.push(report(0, 2, 1, true));
        assert_eq!(done.iter().map(|d| d.0).collect::<Vec<_>>(), vec![2]);
        assert!(c.all_done());
    }

    #[test]
    fn a_worker_thread_that_panics_is_reported_dead_and_its_intervals_close_without_it() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let healthy = crate::record::Reporter::new(tx.clone(), 0);
        let doomed = crate::record::Reporter::new(tx, 1);
        assert!(healthy.send(report(0, 0, 5, false)));
        assert!(doomed.send(report(1, 0, 3, false)));
        // The panic unwinds through the thread that owns the reporter.
        let panicked = std::thread::spawn(move || {
            let _owned = doomed;
            panic!("timerfd: too many open files");
        })
        .join();
        assert!(panicked.is_err());
        assert!(healthy.send(report(0, 1, 6, false)));
        let mut c = Collector::new(2);
        let mut closed = Vec::new();
        let mut died = 0;
        while let Ok(r) = rx.try_recv() {
            died += usize::from(r.died);
            closed.extend(c.push(r));
        }
        assert_eq!(died, 1, "one report says the worker died");
        let delivered: Vec<_> = closed
            .iter()
            .map(|(k, s)| (*k, s.total(Counter::Delivered)))
            .collect();
        assert_eq!(
            delivered,
            vec![(0, 8), (1, 6)],
            "interval 1 no longer waits for it"
        );
        assert_eq!(
            c.unfinished(),
            2,
            "the dead worker and the one still running"
        );
        // The healthy worker's last report ends the run; the dead one is still counted.
        assert!(healthy.send(report(0, 2, 1, true)));
        drop(healthy);
        let r = rx.try_recv().unwrap();
        assert!(!r.died);
        c.push(r);
        assert!(
            rx.try_recv().is_err(),
            "a reporter that finished sends nothing on drop"
        );
        assert!(c.all_done());
        assert_eq!(c.unfinished(), 1);
    }
}
