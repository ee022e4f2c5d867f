//! Which load to try next: geometric steps up from the start until a step fails (down, if the
//! start already fails), then bisection between the highest passing and the lowest failing
//! load. Pure: it is told each step's verdict and never runs anything, so its bounds are tested
//! with tables.

use serde::{Deserialize, Serialize};

/// The bounds and shape of one search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchPlan {
    /// First load tried.
    pub start: f64,
    /// Ratio between geometric steps (> 1).
    pub factor: f64,
    /// Most geometric steps, the first included.
    pub max_steps: usize,
    /// Most bisection steps after them.
    pub max_bisect: usize,
    /// Bisection stops once the gap between passing and failing is at most this fraction of
    /// the failing load.
    pub resolution: f64,
    /// Lowest load worth trying.
    pub floor: f64,
    /// Highest load the scenario allows.
    pub ceiling: f64,
}

/// Why the search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// Passing and failing loads are within the resolution.
    Converged,
    /// The bisection steps ran out.
    BisectLimit,
    /// Every geometric step passed (or every one failed) and the steps ran out.
    StepLimit,
    /// Every step passed up to the highest load the scenario allows.
    Ceiling,
    /// Even the lowest load worth trying failed.
    Floor,
    /// `--max-time` was reached (set by the driver).
    TimeLimit,
    /// Ctrl-C (set by the driver).
    Interrupted,
    /// A step could not run (set by the driver).
    Error,
}

impl Stop {
    /// A short explanation for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Stop::Converged => "passing and failing loads are within the resolution",
            Stop::BisectLimit => "the bisection steps ran out",
            Stop::StepLimit => "the geometric steps ran out",
            Stop::Ceiling => "the highest load a scenario allows was reached",
            Stop::Floor => "even the lowest load failed",
            Stop::TimeLimit => "--max-time was reached",
            Stop::Interrupted => "interrupted",
            Stop::Error => "a step could not run",
        }
    }
}

/// A search in progress.
#[derive(Debug, Clone)]
pub struct Search {
    plan: SearchPlan,
    tried: Vec<(f64, bool)>,
    geometric: usize,
    bisections: usize,
}

impl Search {
    /// A search that has tried nothing yet.
    pub fn new(plan: SearchPlan) -> Self {
        Self {
            plan,
            tried: Vec::new(),
            geometric: 0,
            bisections: 0,
        }
    }

    /// Highest passing load so far.
    pub fn max_pass(&self) -> Option<f64> {
        self.tried
            .iter()
            .filter(|t| t.1)
            .map(|t| t.0)
            .reduce(f64::max)
    }

    /// Lowest failing load so far.
    pub fn min_fail(&self) -> Option<f64> {
        self.tried
            .iter()
            .filter(|t| !t.1)
            .map(|t| t.0)
            .reduce(f64::min)
    }

    /// Loads are whole numbers (events/s or connections): nothing finer is worth a run.
    fn round(load: f64) -> f64 {
        load.round().max(1.0)
    }

    /// The next load to try, or why the search is over.
    pub fn next(&self) -> Result<f64, Stop> {
        let p = &self.plan;
        match (self.max_pass(), self.min_fail()) {
            (None, None) => Ok(Self::round(p.start.clamp(p.floor, p.ceiling))),
            (Some(lo), None) => {
                if lo >= p.ceiling {
                    Err(Stop::Ceiling)
                } else if self.geometric >= p.max_steps {
                    Err(Stop::StepLimit)
                } else {
                    // Always a step up: with a small factor, rounding could repeat `lo`.
                    Ok(Self::round((lo * p.factor).max(lo + 1.0).min(p.ceiling)))
                }
            }
            (None, Some(hi)) => {
                let next = Self::round((hi / p.factor).max(p.floor));
                if hi <= p.floor || next >= hi {
                    Err(Stop::Floor)
                } else if self.geometric >= p.max_steps {
                    Err(Stop::StepLimit)
                } else {
                    Ok(next)
                }
            }
            (Some(lo), Some(hi)) => {
                if hi - lo <= p.resolution * hi {
                    return Err(Stop::Converged);
                }
                if self.bisections >= p.max_bisect {
                    return Err(Stop::BisectLimit);
                }
                let mid = Self::round((lo + hi) / 2.0);
                if mid <= lo || mid >= hi {
                    Err(Stop::Converged)
                } else {
                    Ok(mid)
                }
            }
        }
    }

    /// Records a step's verdict.
    pub fn record(&mut self, load: f64, pass: bool) {
        if self.max_pass().is_some() && self.min_fail().is_some() {
            self.bisections += 1;
        } else {
            self.geometric += 1;
        }
        self.tried.push((load, pass));
    }

    /// Whether the next step would be a bisection step.
    pub fn bisecting(&self) -> bool {
        self.max_pass().is_some() && self.min_fail().is_some()
    }
}

/// Runs a whole search against a verdict function (tests, and a dry run of the bounds).
pub fn simulate(plan: SearchPlan, mut pass: impl FnMut(f64) -> bool) -> (Vec<f64>, Stop) {
    let mut s = Search::new(plan);
    let mut tried = Vec::new();
    loop {
        match s.next() {
            Ok(load) => {
                tried.push(load);
                s.record(load, pass(load));
            }
            Err(stop) => return (tried, stop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(start: f64) -> SearchPlan {
        SearchPlan {
            start,
            factor: 2.0,
            max_steps: 12,
            max_bisect: 6,
            resolution: 0.05,
            floor: 1.0,
            ceiling: 10_000_000.0,
        }
    }

    fn search(plan: SearchPlan, capacity: f64) -> (Vec<f64>, Stop, Option<f64>) {
        let (tried, stop) = simulate(plan, |load| load < capacity);
        let mut s = Search::new(plan);
        for &l in &tried {
            s.record(l, l < capacity);
        }
        (tried, stop, s.max_pass())
    }

    #[test]
    fn steps_up_then_bisects_to_within_the_resolution() {
        let (tried, stop, max) = search(plan(200.0), 800.0);
        assert_eq!(&tried[..3], [200.0, 400.0, 800.0], "geometric steps first");
        assert_eq!(&tried[3..], [600.0, 700.0, 750.0, 775.0]);
        assert_eq!(stop, Stop::Converged);
        assert_eq!(max, Some(775.0));
    }

    #[test]
    fn a_small_factor_still_climbs_every_step() {
        let mut p = plan(1.0);
        p.factor = 1.4;
        let (tried, stop, _) = search(p, f64::INFINITY);
        assert!(tried.windows(2).all(|w| w[1] > w[0]), "{tried:?}");
        assert_eq!(&tried[..4], [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(stop, Stop::StepLimit);
    }

    #[test]
    fn table_of_searches() {
        // (start, capacity, max reported, stop)
        let cases = [
            (100.0, 1000.0, Some(950.0), Stop::Converged),
            (1000.0, 150.0, Some(149.0), Stop::Converged),
            (50.0, 51.0, Some(50.0), Stop::Converged),
            (10.0, f64::INFINITY, Some(20480.0), Stop::StepLimit),
            (8.0, 0.5, None, Stop::Floor),
        ];
        for (start, capacity, want, want_stop) in cases {
            let (tried, stop, max) = search(plan(start), capacity);
            assert_eq!(
                (max, stop),
                (want, want_stop),
                "{start} vs {capacity}: {tried:?}"
            );
            assert!(tried.len() <= 12 + 6, "bounded: {tried:?}");
            if let Some(m) = max {
                assert!(m < capacity, "only passing loads are reported");
            }
        }
    }

    #[test]
    fn bisection_is_bounded_even_at_a_fine_resolution() {
        let mut p = plan(100.0);
        p.resolution = 1e-6;
        let (tried, stop) = simulate(p, |l| l < 1000.0);
        assert_eq!(stop, Stop::BisectLimit);
        assert_eq!(
            tried.len(),
            5 + 6,
            "5 geometric steps (100..1600), 6 bisections"
        );
    }

    #[test]
    fn every_search_stops_within_its_bound() {
        for capacity in [0.3, 1.0, 2.5, 7.0, 99.0, 1234.0, 5e6, 9.9e6, 1e9] {
            for start in [1.0, 3.0, 1000.0, 9e6] {
                let p = plan(start);
                let (tried, _) = simulate(p, |l| l < capacity);
                assert!(
                    tried.len() <= p.max_steps + p.max_bisect,
                    "{start}/{capacity}"
                );
                let mut seen = tried.clone();
                seen.sort_by(f64::total_cmp);
                seen.dedup();
                assert_eq!(seen.len(), tried.len(), "no load tried twice: {tried:?}");
                assert!(tried.iter().all(|&l| (1.0..=1e7).contains(&l)), "{tried:?}");
            }
        }
    }

    #[test]
    fn a_failing_start_steps_down_first() {
        let (tried, _, max) = search(plan(1000.0), 300.0);
        assert_eq!(&tried[..3], [1000.0, 500.0, 250.0]);
        assert!(max.unwrap() >= 250.0 && max.unwrap() < 300.0);
    }

    #[test]
    fn noisy_verdicts_still_end() {
        // Pass/fail alternating regardless of load: the search must still stop.
        let mut flip = false;
        let (tried, _) = simulate(plan(100.0), |_| {
            flip = !flip;
            flip
        });
        assert!(tried.len() <= 18, "{tried:?}");
    }

    #[test]
    fn the_ceiling_stops_an_always_passing_search() {
        let mut p = plan(3e6);
        p.ceiling = 1e7;
        let (tried, stop) = simulate(p, |_| true);
        assert_eq!(tried, [3e6, 6e6, 1e7]);
        assert_eq!(stop, Stop::Ceiling);
    }
}
