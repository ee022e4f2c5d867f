//! `pushbench compare BASELINE NEW`: a regression verdict per model and metric that does not cry
//! wolf on noise.
//!
//! A change counts only when it is both larger than the tolerance and beyond run-to-run
//! variation. Variation comes from the results themselves: each run's 1 s intervals (the `.hlog`
//! histograms, the `timeseries.csv` rows) are grouped into at most [`MAX_BLOCKS`] contiguous
//! blocks and resampled with replacement (a block bootstrap, seeded, so verdicts repeat); a
//! metric whose 95% intervals for the two runs overlap is called noise, whatever its size.
//! Figures with a single value per run (memory per connection) are judged by tolerance alone,
//! and the output says so.

use std::fmt::Write;

use serde::Serialize;

use crate::model_kind::ModelKind;
use crate::record::results::{ModelSummary, TimeseriesRow};
use crate::report::load::RunData;
use crate::report::table::fmt_us;
use crate::schedule::SplitMix64;

/// Most blocks the intervals are grouped into (bounds the cost on long runs).
pub const MAX_BLOCKS: usize = 30;
/// Bootstrap resamples per figure.
pub const RESAMPLES: usize = 400;

/// What a comparison found for one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within the tolerance.
    Same,
    /// Beyond the tolerance but within run-to-run variation.
    Noise,
    /// Worse, beyond the tolerance and the variation.
    Regression,
    /// Better, beyond the tolerance and the variation.
    Improvement,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Same => "same",
            Verdict::Noise => "noise",
            Verdict::Regression => "REGRESSION",
            Verdict::Improvement => "improvement",
        }
    }
}

/// A figure of one run with its 95% bootstrap interval, when the data allow one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    /// The whole-run value.
    pub value: f64,
    /// 95% interval (low, high), from resampling the run's intervals.
    pub ci: Option<(f64, f64)>,
}

/// One line of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// Model.
    pub model: ModelKind,
    /// Metric, e.g. `latency p99`.
    pub metric: String,
    /// Unit of the values: `us`, `/s`, `%`, `s`, `B`.
    pub unit: &'static str,
    /// Baseline.
    pub baseline: Estimate,
    /// New run.
    pub new: Estimate,
    /// Relative change, new vs baseline (0.1 = +10%).
    pub change: f64,
    /// The verdict.
    pub verdict: Verdict,
    /// How it was judged.
    pub judged_by: &'static str,
}

/// Decides a verdict: beyond `tolerance` (relative) and, where both intervals are known, with
/// intervals that do not overlap.
pub fn judge(base: &Estimate, new: &Estimate, tolerance: f64, lower_is_better: bool) -> Verdict {
    let change = relative_change(base.value, new.value);
    if change.abs() <= tolerance {
        return Verdict::Same;
    }
    if let (Some(b), Some(n)) = (base.ci, new.ci) {
        if n.0 <= b.1 && b.0 <= n.1 {
            return Verdict::Noise;
        }
    }
    if (change > 0.0) == lower_is_better {
        Verdict::Regression
    } else {
        Verdict::Improvement
    }
}

fn relative_change(base: f64, new: f64) -> f64 {
    if base == new {
        0.0
    } else if base == 0.0 {
        // From nothing to something: as large as a change gets.
        f64::INFINITY.copysign(new)
    } else {
        (new - base) / base.abs()
    }
}

/// Groups per-interval items into at most `MAX_BLOCKS` contiguous blocks of equal length.
fn blocks<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    let per = items.len().div_ceil(MAX_BLOCKS).max(1);
    items.chunks(per).map(<[T]>::to_vec).collect()
}

/// The `q` quantile of the union of sparse (value, count) lists.
pub fn quantile(parts: &[&[(u64, u64)]], q: f64) -> Option<u64> {
    let mut all: Vec<(u64, u64)> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let total: u64 = all.iter().map(|v| v.1).sum();
    if total == 0 {
        return None;
    }
    all.sort_unstable_by_key(|v| v.0);
    // The same rank rule as HdrHistogram's value_at_quantile: the value at or above q of the
    // samples.
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (value, count) in all {
        seen += count;
        if seen >= rank {
            return Some(value);
        }
    }
    None
}

/// Percentile `q` of a run's intervals, with a block-bootstrap 95% interval.
pub fn quantile_estimate(intervals: &[Vec<(u64, u64)>], q: f64, seed: u64) -> Option<Estimate> {
    let whole: Vec<&[(u64, u64)]> = intervals.iter().map(Vec::as_slice).collect();
    let value = quantile(&whole, q)? as f64;
    // Resamples add counts on one dense grid of the run's distinct values: no sort per resample.
    let mut grid: Vec<u64> = intervals.iter().flatten().map(|v| v.0).collect();
    grid.sort_unstable();
    grid.dedup();
    let blocks: Vec<Vec<(usize, u64)>> = blocks(intervals)
        .into_iter()
        .map(|b| {
            b.into_iter()
                .flatten()
                .map(|(v, c)| (grid.binary_search(&v).unwrap_or(0), c))
                .collect()
        })
        .collect();
    let ci = (blocks.len() >= 3).then(|| {
        let mut rng = SplitMix64::new(seed);
        let mut dense = vec![0u64; grid.len()];
        let mut values: Vec<f64> = (0..RESAMPLES)
            .filter_map(|_| {
                dense.fill(0);
                let mut total = 0;
                for _ in 0..blocks.len() {
                    for &(i, c) in &blocks[rng.next_u64() as usize % blocks.len()] {
                        dense[i] += c;
                        total += c;
                    }
                }
                let rank = ((q * total as f64).ceil() as u64).clamp(1, total.max(1));
                let mut seen = 0;
                dense
                    .iter()
                    .position(|c| {
                        seen += c;
                        seen >= rank
                    })
                    .map(|i| grid[i] as f64)
            })
            .collect();
        interval_of(&mut values)
    });
    Some(Estimate {
        value,
        ci: ci.flatten(),
    })
}

/// Ratio of sums (e.g. CPU / deliveries) over per-interval pairs, with a block-bootstrap 95%
/// interval.
pub fn ratio_estimate(pairs: &[(f64, f64)], seed: u64) -> Option<Estimate> {
    let sum = |p: &[(f64, f64)]| p.iter().fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
    let (num, den) = sum(pairs);
    if den <= 0.0 {
        return None;
    }
    let blocks: Vec<(f64, f64)> = blocks(pairs).iter().map(|b| sum(b)).collect();
    let ci = (blocks.len() >= 3).then(|| {
        let mut rng = SplitMix64::new(seed);
        let mut values: Vec<f64> = (0..RESAMPLES)
            .filter_map(|_| {
                let (mut n, mut d) = (0.0, 0.0);
                for _ in 0..blocks.len() {
                    let b = blocks[rng.next_u64() as usize % blocks.len()];
                    n += b.0;
                    d += b.1;
                }
                (d > 0.0).then_some(n / d)
            })
            .collect();
        interval_of(&mut values)
    });
    Some(Estimate {
        value: num / den,
        ci: ci.flatten(),
    })
}

/// The central 95% of bootstrap values.
fn interval_of(values: &mut [f64]) -> Option<(f64, f64)> {
    if values.len() < 20 {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

/// Measured intervals of a model: those with deliveries, after the warm-up, without the last
/// (partial) one.
fn measured_rows(run: &RunData, model: ModelKind) -> Vec<&TimeseriesRow> {
    let rows: Vec<&TimeseriesRow> = run.series(model).filter(|r| r.delivered > 0).collect();
    let skip = run.summary.warmup_s.ceil() as usize;
    let end = rows.len().saturating_sub(1);
    rows.get(skip.min(end)..end).unwrap_or(&[]).to_vec()
}

/// Compares every model present in both runs.
pub fn compare(base: &RunData, new: &RunData, tolerance: f64) -> Vec<Line> {
    let mut lines = Vec::new();
    for bm in &base.summary.models {
        let Some(nm) = new.summary.models.iter().find(|m| m.model == bm.model) else {
            continue;
        };
        model_lines(base, new, bm, nm, tolerance, &mut lines);
    }
    lines
}

fn model_lines(
    base: &RunData,
    new: &RunData,
    bm: &ModelSummary,
    nm: &ModelSummary,
    tolerance: f64,
    out: &mut Vec<Line>,
) {
    let model = bm.model;
    let mut push = |metric: String,
                    unit: &'static str,
                    b: Estimate,
                    n: Estimate,
                    lower_is_better: bool,
                    judged_by: &'static str| {
        let verdict = judge(&b, &n, tolerance, lower_is_better);
        out.push(Line {
            model,
            metric,
            unit,
            change: relative_change(b.value, n.value),
            baseline: b,
            new: n,
            verdict,
            judged_by,
        });
    };
    const BOOT: &str = "tolerance + bootstrap over 1 s intervals";
    const TOL: &str = "tolerance only (one figure per run)";

    let intervals = |run: &RunData, tag: &str| -> Vec<Vec<(u64, u64)>> {
        run.hists
            .get(&model)
            .and_then(|h| h.intervals.get(tag))
            .cloned()
            .unwrap_or_default()
    };
    let (bi, ni) = (intervals(base, "latency"), intervals(new, "latency"));
    for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)] {
        let seed = (q * 1e4) as u64;
        if let (Some(b), Some(n)) = (
            quantile_estimate(&bi, q, seed),
            quantile_estimate(&ni, q, seed + 1),
        ) {
            push(format!("latency {name}"), "us", b, n, true, BOOT);
        }
    }
    // Over TLS in both runs: what a handshake costs (the connect time stays TCP).
    let (bt, nt) = (
        intervals(base, "tls_handshake"),
        intervals(new, "tls_handshake"),
    );
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        let seed = 100 + (q * 1e4) as u64;
        if let (Some(b), Some(n)) = (
            quantile_estimate(&bt, q, seed),
            quantile_estimate(&nt, q, seed + 1),
        ) {
            push(format!("TLS handshake {name}"), "us", b, n, true, BOOT);
        }
    }

    // Rates and costs from the per-interval rows.
    let pairs = |run: &RunData, f: &dyn Fn(&TimeseriesRow) -> (f64, f64)| -> Vec<(f64, f64)> {
        measured_rows(run, model).into_iter().map(f).collect()
    };
    let rate = |r: &TimeseriesRow| (r.delivered as f64, 1.0);
    if let (Some(b), Some(n)) = (
        ratio_estimate(&pairs(base, &rate), 11),
        ratio_estimate(&pairs(new, &rate), 12),
    ) {
        push("delivered per interval".into(), "/s", b, n, false, BOOT);
    }
    // CPU-seconds per million deliveries: cpu% / 100 is CPU-seconds in a 1 s interval.
    let gen_cpu = |r: &TimeseriesRow| (r.gen_cpu_pct / 100.0 * 1e6, r.delivered as f64);
    if let (Some(b), Some(n)) = (
        ratio_estimate(&pairs(base, &gen_cpu), 13),
        ratio_estimate(&pairs(new, &gen_cpu), 14),
    ) {
        push("generator CPU / 1M events".into(), "s", b, n, true, BOOT);
    }
    let target_cpu = |r: &TimeseriesRow| (r.target_cpu_pct / 100.0 * 1e6, r.delivered as f64);
    if let (Some(b), Some(n)) = (
        ratio_estimate(&pairs(base, &target_cpu), 15),
        ratio_estimate(&pairs(new, &target_cpu), 16),
    ) {
        if b.value > 0.0 || n.value > 0.0 {
            push("target CPU / 1M events".into(), "s", b, n, true, BOOT);
        }
    }

    // Failures: a binomial proportion each, its interval by the normal approximation.
    let failed = |m: &ModelSummary| {
        let n = m.events.max(1) as f64;
        let p = m.failed as f64 / n;
        let half = 1.96 * (p * (1.0 - p) / n).sqrt() + 0.5 / n;
        Estimate {
            value: p * 100.0,
            ci: Some((
                (p * 100.0 - half * 100.0).max(0.0),
                p * 100.0 + half * 100.0,
            )),
        }
    };
    push(
        "failed".into(),
        "%",
        failed(bm),
        failed(nm),
        true,
        "tolerance + binomial 95% interval",
    );

    if let (Some(b), Some(n)) = (bm.fleet(), nm.fleet()) {
        let per_conn = |w: &crate::record::results::WsSummary| Estimate {
            value: w.memory_per_connection_bytes.generator + w.memory_per_connection_bytes.target,
            ci: None,
        };
        if bm.connections.peak > 0 && nm.connections.peak > 0 {
            push(
                "memory / connection".into(),
                "B",
                per_conn(b),
                per_conn(n),
                true,
                TOL,
            );
        }
    }
}

/// True when any line is a regression.
pub fn regressed(lines: &[Line]) -> bool {
    lines.iter().any(|l| l.verdict == Verdict::Regression)
}

fn show(value: f64, unit: &str) -> String {
    match unit {
        "us" => fmt_us(value.round() as u64),
        "/s" => format!("{value:.0}/s"),
        "%" => format!("{value:.3}%"),
        "s" => format!("{value:.1} s"),
        "B" => format!("{:.2} KiB", value / 1024.0),
        _ => format!("{value}"),
    }
}

fn show_change(change: f64) -> String {
    if change.is_infinite() {
        "from 0".into()
    } else {
        format!("{:+.1}%", change * 100.0)
    }
}

fn show_ci(e: &Estimate, unit: &str) -> String {
    e.ci.map_or("-".into(), |(lo, hi)| {
        format!("{}..{}", show(lo, unit), show(hi, unit))
    })
}

/// How the verdicts were reached, for the top of every format.
pub fn method(tolerance: f64) -> String {
    format!(
        "A change counts when it exceeds the tolerance ({:.0}%) and lies beyond run-to-run \
         variation: each run's 1 s intervals are resampled ({RESAMPLES} block-bootstrap \
         resamples, at most {MAX_BLOCKS} blocks) and the two 95% intervals must not overlap; \
         failures use a binomial 95% interval; single figures use the tolerance alone.",
        tolerance * 100.0
    )
}

/// The comparison as an aligned text table.
pub fn render_text(base: &RunData, new: &RunData, lines: &[Line], tolerance: f64) -> String {
    let mut out = format!(
        "compare: baseline {} -> new {}\n{}\n\n",
        base.label,
        new.label,
        method(tolerance)
    );
    let _ = writeln!(
        out,
        "{:<10} {:<26} {:>12} {:>12} {:>9}  {:<12} 95% intervals (baseline | new)",
        "model", "metric", "baseline", "new", "change", "verdict"
    );
    for l in lines {
        let _ = writeln!(
            out,
            "{:<10} {:<26} {:>12} {:>12} {:>9}  {:<12} {} | {}",
            l.model,
            l.metric,
            show(l.baseline.value, l.unit),
            show(l.new.value, l.unit),
            show_change(l.change),
            l.verdict.word(),
            show_ci(&l.baseline, l.unit),
            show_ci(&l.new, l.unit)
        );
    }
    out.push_str(&summary_line(lines));
    out
}

fn summary_line(lines: &[Line]) -> String {
    let n = |v| lines.iter().filter(|l| l.verdict == v).count();
    let (reg, imp, noise) = (
        n(Verdict::Regression),
        n(Verdict::Improvement),
        n(Verdict::Noise),
    );
    format!(
        "\nverdict: {} ({reg} regressions, {imp} improvements, {noise} changes within noise, {} metrics compared)\n",
        if reg > 0 { "REGRESSION" } else { "ok" },
        lines.len()
    )
}

/// The comparison as a markdown table, for a pull-request comment.
pub fn render_markdown(base: &RunData, new: &RunData, lines: &[Line], tolerance: f64) -> String {
    let mut out = format!(
        "### pushbench: {} vs baseline {}\n\n",
        new.label, base.label
    );
    out.push_str("| model | metric | baseline | new | change | verdict |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: | --- |\n");
    for l in lines {
        let verdict = match l.verdict {
            Verdict::Regression => "**regression**".to_string(),
            v => v.word().to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {verdict} |",
            l.model,
            l.metric,
            show(l.baseline.value, l.unit),
            show(l.new.value, l.unit),
            show_change(l.change)
        );
    }
    out.push_str(&summary_line(lines).replace("verdict:", "**verdict:**"));
    let _ = writeln!(out, "\n<sub>{}</sub>", method(tolerance));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(value: f64, ci: Option<(f64, f64)>) -> Estimate {
        Estimate { value, ci }
    }

    #[test]
    fn verdicts_need_both_size_and_separation() {
        let base = est(100.0, Some((95.0, 105.0)));
        // Small change: same, however well separated.
        assert_eq!(
            judge(&base, &est(105.0, Some((104.0, 106.0))), 0.10, true),
            Verdict::Same
        );
        // Large but overlapping: noise.
        assert_eq!(
            judge(&base, &est(120.0, Some((100.0, 160.0))), 0.10, true),
            Verdict::Noise
        );
        // Large and separated: regression or improvement by direction.
        assert_eq!(
            judge(&base, &est(130.0, Some((120.0, 140.0))), 0.10, true),
            Verdict::Regression
        );
        assert_eq!(
            judge(&base, &est(70.0, Some((60.0, 80.0))), 0.10, true),
            Verdict::Improvement
        );
        // Higher is better (rates): a drop is the regression.
        assert_eq!(
            judge(&base, &est(70.0, Some((60.0, 80.0))), 0.10, false),
            Verdict::Regression
        );
        // No interval: tolerance alone.
        assert_eq!(
            judge(&est(100.0, None), &est(130.0, None), 0.10, true),
            Verdict::Regression
        );
    }

    #[test]
    fn quantile_follows_hdr_rank_rule() {
        let a = [(10, 50), (20, 40)];
        let b = [(30, 10)];
        assert_eq!(quantile(&[&a, &b], 0.5), Some(10));
        assert_eq!(quantile(&[&a, &b], 0.51), Some(20));
        assert_eq!(quantile(&[&a, &b], 0.99), Some(30));
        assert_eq!(quantile(&[&a, &b], 1.0), Some(30));
        assert_eq!(quantile(&[], 0.5), None);
    }

    /// Fifteen 1 s intervals of a latency distribution: `scale` x (100..=1100 us, heavier
    /// towards the low end), with interval-to-interval wobble from `seed`.
    fn run_intervals(scale: f64, seed: u64) -> Vec<Vec<(u64, u64)>> {
        let mut rng = SplitMix64::new(seed);
        (0..15)
            .map(|_| {
                let wobble = 0.95 + 0.1 * rng.next_f64();
                let mut h = crate::record::hist::new_hist();
                for _ in 0..2000 {
                    let u = rng.next_f64();
                    h.record((scale * wobble * (100.0 + 1000.0 * u * u * u)) as u64)
                        .unwrap();
                }
                h.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect()
            })
            .collect()
    }

    fn verdict(base: &[Vec<(u64, u64)>], new: &[Vec<(u64, u64)>], q: f64) -> Verdict {
        let b = quantile_estimate(base, q, 1).unwrap();
        let n = quantile_estimate(new, q, 2).unwrap();
        judge(&b, &n, 0.10, true)
    }

    #[test]
    fn clear_regression_clear_improvement_and_pure_noise() {
        let base = run_intervals(1.0, 1);
        for q in [0.5, 0.99] {
            assert_eq!(
                verdict(&base, &run_intervals(1.5, 2), q),
                Verdict::Regression,
                "q {q}"
            );
            assert_eq!(
                verdict(&base, &run_intervals(0.6, 3), q),
                Verdict::Improvement,
                "q {q}"
            );
            // Another run of the same system: never a regression.
            for seed in 4..12 {
                let v = verdict(&base, &run_intervals(1.0, seed), q);
                assert!(
                    matches!(v, Verdict::Same | Verdict::Noise),
                    "q {q} seed {seed}: {v:?}"
                );
            }
        }
    }

    #[test]
    fn one_slow_interval_is_noise_not_a_p99_regression() {
        let base = run_intervals(1.0, 1);
        let mut new = run_intervals(1.0, 2);
        // A hiccup: one interval four times slower than the rest.
        new[7] = run_intervals(4.0, 9).remove(0);
        let b = quantile_estimate(&base, 0.99, 1).unwrap();
        let n = quantile_estimate(&new, 0.99, 2).unwrap();
        assert!(
            n.value > b.value * 1.1,
            "the hiccup moves the whole-run p99"
        );
        assert_eq!(judge(&b, &n, 0.10, true), Verdict::Noise);
    }

    #[test]
    fn ratio_estimate_brackets_the_ratio() {
        let pairs: Vec<(f64, f64)> = (0..20).map(|i| (10.0 + (i % 3) as f64, 100.0)).collect();
        let e = ratio_estimate(&pairs, 5).unwrap();
        // (6 x (10 + 11 + 12) + 10 + 11) / 2000
        assert!((e.value - 0.1095).abs() < 1e-9, "{}", e.value);
        let (lo, hi) = e.ci.unwrap();
        assert!(lo <= e.value && e.value <= hi && lo >= 0.10 && hi <= 0.12);
    }
}
