//! Pass/fail conditions on a run's summary, typed once: a [`Condition`] (`< 50000`, `== 0`) is
//! parsed when a scenario's `[thresholds]` or `capacity --slo` is read, never again at
//! evaluation; [`metric_value`] is the one lookup of a dotted metric (`webhook.latency_us.p99`)
//! in the models' summaries; [`evaluate`] turns a scenario's thresholds into the verdicts that
//! `summary.json` records.

use std::fmt;

use crate::record::results::{ModelSummary, ThresholdResult};

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Two-character operators first, so `<=` is not read as `<` followed by `=`.
    const LONGEST_FIRST: [Op; 6] = [Op::Le, Op::Ge, Op::Eq, Op::Ne, Op::Lt, Op::Gt];

    /// As written: `<`, `<=`, `>`, `>=`, `==`, `!=`.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    /// The operator `text` starts with and what follows it: `"<= 5"` -> `(Le, " 5")`.
    pub fn split_prefix(text: &str) -> Option<(Op, &str)> {
        Self::LONGEST_FIRST
            .iter()
            .find_map(|&op| text.strip_prefix(op.symbol()).map(|rest| (op, rest)))
    }

    /// Whether `value op limit` holds.
    pub fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Op::Lt => value < limit,
            Op::Le => value <= limit,
            Op::Gt => value > limit,
            Op::Ge => value >= limit,
            Op::Eq => value == limit,
            Op::Ne => value != limit,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// `op limit`, e.g. `< 50000`: what a metric's value must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    op: Op,
    limit: f64,
    /// As written (trimmed): results files show the condition the way the user wrote it.
    text: String,
}

impl Condition {
    /// A condition built from its parts; it displays as `op limit`.
    pub fn new(op: Op, limit: f64) -> Self {
        Self {
            op,
            limit,
            text: format!("{op} {limit}"),
        }
    }

    /// Reads `"< 50000"`, `"<=0.5"`, `"== 0"`, `"!= 0"` (whitespace allowed around either part);
    /// the limit must be a finite number.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty condition; write e.g. \"< 50000\" or \"== 0\"".into());
        }
        let (op, rest) = Op::split_prefix(text)
            .ok_or_else(|| format!("\"{text}\" does not start with one of <, <=, >, >=, ==, !="))?;
        let number = rest.trim();
        if number.is_empty() {
            return Err(format!("\"{text}\" has no number after {op}"));
        }
        match number.parse::<f64>() {
            Ok(limit) if limit.is_finite() => Ok(Self {
                op,
                limit,
                text: text.to_string(),
            }),
            _ => Err(format!("\"{number}\" in \"{text}\" is not a finite number")),
        }
    }

    /// The comparison.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The number compared against.
    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// Whether `value` satisfies the condition.
    pub fn holds(&self, value: f64) -> bool {
        self.op.holds(value, self.limit)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `metric op value`, e.g. `webhook.latency_us.p99 < 50000`, from a scenario's `[thresholds]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Dotted metric path.
    pub metric: String,
    /// What the metric must satisfy.
    pub condition: Condition,
    /// Line in the scenario file.
    pub line: usize,
}

/// Looks a dotted metric (`webhook.latency_us.p99`) up in the models' summaries: the model's
/// entry, then [`ModelSummary::field`]. `None` when that model did not run or the field is not a number.
pub fn metric_value(models: &[ModelSummary], metric: &str) -> Option<f64> {
    let (model, path) = metric.split_once('.')?;
    let m = models.iter().find(|m| m.model.name() == model)?;
    m.field(path)
}

/// Evaluates every threshold against the models that ran; a metric without a value fails.
pub fn evaluate(thresholds: &[Threshold], models: &[ModelSummary]) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .map(|t| {
            let observed = metric_value(models, &t.metric);
            ThresholdResult {
                expression: format!("{} {}", t.metric, t.condition),
                observed,
                pass: observed.is_some_and(|v| t.condition.holds(v)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Percentiles;

    #[test]
    fn every_operator_at_below_and_above_its_limit() {
        // (condition, [holds at 10, holds at 9, holds at 11])
        let cases = [
            ("< 10", [false, true, false]),
            ("<= 10", [true, true, false]),
            ("> 10", [false, false, true]),
            (">= 10", [true, false, true]),
            ("== 10", [true, false, false]),
            ("!= 10", [false, true, true]),
        ];
        for (text, want) in cases {
            let c = Condition::parse(text).unwrap();
            let got = [c.holds(10.0), c.holds(9.0), c.holds(11.0)];
            assert_eq!(got, want, "{text:?} at / below / above 10");
        }
    }

    #[test]
    fn conditions_parse_as_written() {
        let cases = [
            ("< 50000", Op::Lt, 50_000.0, "< 50000"),
            ("<=0.5", Op::Le, 0.5, "<=0.5"),
            ("== 0", Op::Eq, 0.0, "== 0"),
            ("!= 0", Op::Ne, 0.0, "!= 0"),
            ("  >=  1e3 ", Op::Ge, 1000.0, ">=  1e3"),
            (">-2", Op::Gt, -2.0, ">-2"),
        ];
        for (text, op, limit, shown) in cases {
            let c = Condition::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!((c.op(), c.limit()), (op, limit), "{text:?}");
            assert_eq!(c.to_string(), shown, "{text:?} as shown in results");
        }
        assert_eq!(Condition::new(Op::Le, 50_000.0).to_string(), "<= 50000");
    }

    #[test]
    fn bad_conditions_say_what_is_wrong() {
        let cases = [
            ("", "empty"),
            ("   ", "empty"),
            ("about zero", "does not start with one of"),
            ("= 5", "does not start with one of"),
            ("=< 5", "does not start with one of"),
            ("<", "no number after <"),
            ("!=  ", "no number after !="),
            ("< fast", "\"fast\" in \"< fast\" is not a finite number"),
            ("< = 5", "is not a finite number"),
            ("< inf", "is not a finite number"),
            ("== NaN", "is not a finite number"),
        ];
        for (text, want) in cases {
            match Condition::parse(text) {
                Ok(c) => panic!("{text:?} parsed as {c:?}"),
                Err(e) => assert!(e.contains(want), "{text:?}: {e}"),
            }
        }
    }

    fn webhook_summary() -> ModelSummary {
        ModelSummary {
            model: crate::model_kind::ModelKind::Webhook,
            failed: 3,
            latency_us: Percentiles {
                count: 100,
                p99: 42_000,
                ..Percentiles::default()
            },
            ..ModelSummary::default()
        }
    }

    #[test]
    fn metrics_are_looked_up_by_model_and_dotted_field() {
        let models = [webhook_summary()];
        let cases = [
            ("webhook.latency_us.p99", Some(42_000.0)),
            ("webhook.failed", Some(3.0)),
            // The model did not run.
            ("websocket.failed", None),
            // No such field; a field that is not a number.
            ("webhook.latency_us.p42", None),
            ("webhook.model", None),
            // Not model.metric at all.
            ("failed", None),
        ];
        for (metric, want) in cases {
            assert_eq!(metric_value(&models, metric), want, "{metric}");
        }
    }

    #[test]
    fn thresholds_evaluate_to_verdicts_as_written() {
        let t = |metric: &str, condition: &str| Threshold {
            metric: metric.into(),
            condition: Condition::parse(condition).unwrap(),
            line: 1,
        };
        let thresholds = [
            t("webhook.latency_us.p99", " < 50000 "),
            t("webhook.failed", "==0"),
            t("websocket.failed", "== 0"),
        ];
        let got = evaluate(&thresholds, &[webhook_summary()]);
        let got: Vec<_> = got
            .iter()
            .map(|r| (r.expression.as_str(), r.observed, r.pass))
            .collect();
        assert_eq!(
            got,
            [
                ("webhook.latency_us.p99 < 50000", Some(42_000.0), true),
                ("webhook.failed ==0", Some(3.0), false),
                // A model that did not run has no value, and no value is no pass.
                ("websocket.failed == 0", None, false),
            ]
        );
    }
}
