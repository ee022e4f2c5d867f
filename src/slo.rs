//! Service-level objectives for `capacity`: `--slo "p99 < 50ms, failed < 0.1%"` parsed into
//! clauses and checked against one model's summary of a run.
//!
//! Terms: a latency quantile of the headline delivery latency (`p50`, `p90`, `p99`, `p99.9`,
//! `p99.99`, `max`, `mean`) with a time unit; `failed` as a percentage of deliveries (or of
//! connections when nothing is delivered, as in idle mode) or, without `%`, a count; or any
//! numeric field of the summary entry by its dotted name (`connect_us.p99 < 1s`, `retries <= 10`).
//! Operators and the field lookup are the ones scenario thresholds use ([`crate::thresholds`]):
//! `<`, `<=`, `>`, `>=`, `==`, `!=`.

use std::fmt;

use crate::record::results::ModelSummary;
use crate::scenario::parse_duration_ns;
use crate::thresholds::{Condition, Op};

/// Why an `--slo` text is not an objective.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SloError {
    /// Nothing given.
    #[error("--slo is empty; write e.g. \"p99 < 50ms, failed < 0.1%\"")]
    Empty,
    /// A clause is not `METRIC OP VALUE`.
    #[error("--slo clause {clause:?}: expected METRIC OP VALUE with OP one of <, <=, >, >=, ==, != (e.g. \"p99 < 50ms\")")]
    Syntax {
        /// The clause as written.
        clause: String,
    },
    /// The metric is not known.
    #[error("--slo clause {clause:?}: unknown metric {metric:?}; use p50, p90, p99, p99.9, p99.99, max, mean, failed, or a numeric summary field such as connect_us.p99")]
    Metric {
        /// The clause as written.
        clause: String,
        /// The metric as written.
        metric: String,
    },
    /// The value is not a number with a fitting unit.
    #[error("--slo clause {clause:?}: {reason}")]
    Value {
        /// The clause as written.
        clause: String,
        /// What is wrong with the value.
        reason: String,
    },
}

/// What a clause measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// A field of `latency_us` (`p99`, `p999`, `max`, `mean`...), in microseconds.
    Latency(&'static str),
    /// Failed deliveries as a percentage of deliveries (of connections when none were due).
    FailedPct,
    /// A dotted numeric field of the summary entry.
    Field(String),
}

/// One `METRIC OP VALUE` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// As written (trimmed), for messages.
    pub text: String,
    /// What it measures.
    pub metric: Metric,
    /// Comparison and limit, in the metric's unit (microseconds for latencies, percent for
    /// `failed %`).
    pub condition: Condition,
}

/// An objective: every clause must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// The clauses, in the order written.
    pub clauses: Vec<Clause>,
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let texts: Vec<&str> = self.clauses.iter().map(|c| c.text.as_str()).collect();
        f.write_str(&texts.join(", "))
    }
}

/// How one clause did in one run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Verdict {
    /// The clause as written.
    pub clause: String,
    /// The observed value, in the clause's unit.
    pub observed: Option<f64>,
    /// Whether it held.
    pub pass: bool,
}

const QUANTILES: [(&str, &str); 9] = [
    ("p50", "p50"),
    ("p90", "p90"),
    ("p99", "p99"),
    ("p999", "p999"),
    ("p99.9", "p999"),
    ("p9999", "p9999"),
    ("p99.99", "p9999"),
    ("max", "max"),
    ("mean", "mean"),
];

/// Parses `--slo`: clauses separated by commas (or `and`).
pub fn parse(text: &str) -> Result<Slo, SloError> {
    let clauses = text
        .replace(" and ", ",")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(parse_clause)
        .collect::<Result<Vec<_>, _>>()?;
    if clauses.is_empty() {
        return Err(SloError::Empty);
    }
    Ok(Slo { clauses })
}

fn parse_clause(clause: &str) -> Result<Clause, SloError> {
    let syntax = || SloError::Syntax {
        clause: clause.into(),
    };
    let at = clause.find(['<', '>', '=', '!']).ok_or_else(syntax)?;
    let (metric, rest) = clause.split_at(at);
    let (op, value) = Op::split_prefix(rest).ok_or_else(syntax)?;
    let (metric, value) = (metric.trim(), value.trim());
    if metric.is_empty() || value.is_empty() {
        return Err(syntax());
    }
    let bad_value = |reason: String| SloError::Value {
        clause: clause.into(),
        reason,
    };
    let time_us = |value: &str| -> Result<f64, SloError> {
        if value.parse::<f64>().is_ok() {
            return Err(bad_value(format!(
                "{value:?} needs a time unit, e.g. {value}ms (us, ms, s)"
            )));
        }
        parse_duration_ns(value)
            .map(|ns| ns as f64 / 1000.0)
            .map_err(|e| bad_value(format!("{value:?}: {e}")))
    };
    let number = |value: &str| -> Result<f64, SloError> {
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad_value(format!("{value:?} is not a number")))
    };
    let (metric, limit) = if let Some((_, field)) = QUANTILES.iter().find(|(n, _)| *n == metric) {
        (Metric::Latency(field), time_us(value)?)
    } else if metric == "failed" {
        match value.strip_suffix('%') {
            Some(pct) => {
                let v = number(pct.trim())?;
                if !(0.0..=100.0).contains(&v) {
                    return Err(bad_value(format!(
                        "{value:?} is not a percentage (0 to 100)"
                    )));
                }
                (Metric::FailedPct, v)
            }
            None => (Metric::Field("failed".into()), number(value)?),
        }
    } else if crate::record::results::is_numeric_metric(metric) {
        let limit = if metric.contains("_us") && value.parse::<f64>().is_err() {
            time_us(value)?
        } else {
            number(value)?
        };
        (Metric::Field(metric.into()), limit)
    } else {
        return Err(SloError::Metric {
            clause: clause.into(),
            metric: metric.into(),
        });
    };
    Ok(Clause {
        text: format!(
            "{metric_text} {op} {value}",
            metric_text = clause[..at].trim()
        ),
        metric,
        condition: Condition::new(op, limit),
    })
}

impl Clause {
    /// The clause's value in one model's summary entry.
    pub fn observe(&self, m: &ModelSummary) -> Option<f64> {
        match &self.metric {
            Metric::Latency(field) => latency_field(m, field),
            Metric::FailedPct => {
                let base = if m.events > 0 {
                    (m.failed, m.events)
                } else {
                    (m.connections.failed, m.connections.target)
                };
                Some(if base.1 == 0 {
                    0.0
                } else {
                    base.0 as f64 * 100.0 / base.1 as f64
                })
            }
            Metric::Field(path) => m.field(path),
        }
    }
}

fn latency_field(m: &ModelSummary, field: &str) -> Option<f64> {
    // Idle connections deliver nothing: their latency is the connect latency, as the capacity
    // table shows it.
    let idle = m.fleet().is_some_and(|w| w.mode == "idle");
    let p = if idle { &m.connect_us } else { &m.latency_us };
    if p.count == 0 {
        return None;
    }
    Some(match field {
        "p50" => p.p50 as f64,
        "p90" => p.p90 as f64,
        "p99" => p.p99 as f64,
        "p999" => p.p999 as f64,
        "p9999" => p.p9999 as f64,
        "max" => p.max as f64,
        _ => p.mean,
    })
}

impl Slo {
    /// Checks every clause; a clause without a value fails (a latency objective over a run in
    /// which nothing was timed, e.g. every attempt timed out, did not hold).
    pub fn check(&self, m: &ModelSummary) -> Vec<Verdict> {
        self.clauses
            .iter()
            .map(|c| {
                let observed = c.observe(m);
                let pass = observed.is_some_and(|v| c.condition.holds(v));
                Verdict {
                    clause: c.text.clone(),
                    observed,
                    pass,
                }
            })
            .collect()
    }

    /// The latency limit of the first upper-bound latency clause (microseconds), to draw it.
    pub fn latency_limit_us(&self) -> Option<(f64, &'static str)> {
        self.clauses
            .iter()
            .find_map(|c| match (&c.metric, c.condition.op()) {
                (Metric::Latency(f), Op::Lt | Op::Le) => Some((c.condition.limit(), *f)),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Percentiles;

    #[test]
    fn the_usual_objective_parses() {
        let slo = parse("p99 < 50ms, failed < 0.1%").unwrap();
        assert_eq!(slo.clauses.len(), 2);
        assert_eq!(slo.clauses[0].metric, Metric::Latency("p99"));
        assert_eq!(slo.clauses[0].condition, Condition::new(Op::Lt, 50_000.0));
        assert_eq!(slo.clauses[1].metric, Metric::FailedPct);
        assert_eq!(slo.clauses[1].condition.limit(), 0.1);
        assert_eq!(slo.to_string(), "p99 < 50ms, failed < 0.1%");
        let slo = parse("p99.9<=1s and failed<=5 and connect_us.p99 < 200ms").unwrap();
        assert_eq!(slo.clauses[0].metric, Metric::Latency("p999"));
        assert_eq!(slo.clauses[0].condition.limit(), 1e6);
        assert_eq!(slo.clauses[1].metric, Metric::Field("failed".into()));
        assert_eq!(slo.clauses[2].condition.limit(), 200_000.0);
        // The operators thresholds take: == and != as well.
        let slo = parse("failed == 0, retries!=3, p99 == 5ms").unwrap();
        let ops: Vec<Op> = slo.clauses.iter().map(|c| c.condition.op()).collect();
        assert_eq!(ops, [Op::Eq, Op::Ne, Op::Eq]);
        assert_eq!(slo.to_string(), "failed == 0, retries != 3, p99 == 5ms");
        assert_eq!(slo.clauses[2].condition.limit(), 5_000.0);
    }

    #[test]
    fn bad_objectives_say_what_is_wrong() {
        let cases = [
            ("", "is empty"),
            ("p99 50ms", "expected METRIC OP VALUE"),
            ("p99 <", "expected METRIC OP VALUE"),
            ("p99 = 50ms", "expected METRIC OP VALUE"),
            ("failed ! 0", "expected METRIC OP VALUE"),
            ("failed ==", "expected METRIC OP VALUE"),
            ("p98 < 50ms", "unknown metric \"p98\""),
            ("p99 < 50", "needs a time unit"),
            ("p99 < fast", "\"fast\""),
            ("failed < lots%", "not a number"),
            ("failed < 150%", "not a percentage"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn clauses_are_checked_against_a_summary() {
        let slo = parse("p99 < 50ms, failed < 0.1%").unwrap();
        let mut m = ModelSummary {
            model: crate::model_kind::ModelKind::Webhook,
            events: 10_000,
            failed: 5,
            latency_us: Percentiles {
                count: 10_000,
                p99: 49_000,
                ..Percentiles::default()
            },
            ..ModelSummary::default()
        };
        assert!(slo.check(&m).iter().all(|v| v.pass));
        m.failed = 10;
        let v = slo.check(&m);
        assert!(v[0].pass && !v[1].pass, "{v:?}");
        assert_eq!(v[1].observed, Some(0.1));
        m.latency_us.p99 = 80_000;
        assert!(!slo.check(&m)[0].pass);
        let exact = parse("failed == 10, retries != 0").unwrap();
        let v = exact.check(&m);
        assert!(v[0].pass && !v[1].pass, "{v:?}");
        assert_eq!((v[0].observed, v[1].observed), (Some(10.0), Some(0.0)));
        // Nothing timed although events were due (every attempt timed out): no pass.
        m.latency_us = Percentiles::default();
        assert!(!slo.check(&m)[0].pass);
        // Idle: latency is the connect latency, connections are the denominator.
        let mut idle = ModelSummary {
            model: crate::model_kind::ModelKind::WebSocket,
            connections: crate::record::results::Connections {
                target: 1000,
                failed: 2,
                ..Default::default()
            },
            connect_us: Percentiles {
                count: 1000,
                p99: 30_000,
                ..Percentiles::default()
            },
            websocket: Some(crate::record::results::WsSummary {
                mode: "idle".into(),
                ..Default::default()
            }),
            ..ModelSummary::default()
        };
        let v = slo.check(&idle);
        assert!(v[0].pass && !v[1].pass, "{v:?}");
        assert_eq!(v[0].observed, Some(30_000.0));
        idle.connect_us.p99 = 300_000;
        assert!(
            !slo.check(&idle)[0].pass,
            "a slow connect breaks p99 in idle mode"
        );
    }
}
