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
    emitted_upto: Option<u64>,
}

impl Collector {
    /// For `workers` reporting sources, numbered `0..workers`.
    pub fn new(workers: usize) -> Self {
        Self {
            pending: BTreeMap::new(),
            reported_upto: vec![None; workers],
            finished: vec![false; workers],
            emitted_upto: None,
        }
    }

    /// Adds a report; returns the intervals it completed, in order.
    pub fn push(&mut self, report: WorkerReport) -> Vec<(u64, IntervalStats)> {
        let w = report.worker as usize;
        self.reported_upto[w] = Some(report.interval);
        self.finished[w] |= report.last;
        // A report for an interval already handed out joins the next one, never re-opens it.
        let k = match self.emitted_upto {
            Some(e) if report.interval <= e => e + 1,
            _ => report.interval,
        };
        self.pending.entry(k).or_default().add(&report.stats);
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

    /// Workers that have not sent their last report.
    pub fn unfinished(&self) -> usize {
        self.finished.iter().filter(|f| !**f).count()
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
}
