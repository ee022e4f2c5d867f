//! JUnit XML for CI systems: threshold verdicts of a run and regression verdicts of a
//! comparison, one test case each, failures carrying the observed values.

use std::fmt::Write;

use super::html::escape;

/// One test case: a threshold or a compared metric.
pub struct Case {
    /// Groups cases in CI displays (the model).
    pub class: String,
    /// The case (threshold expression or metric).
    pub name: String,
    /// `Some(message)` when it failed.
    pub failure: Option<String>,
}

/// A `<testsuites>` document with one suite.
pub fn document(suite: &str, cases: &[Case]) -> String {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites tests=\"{n}\" failures=\"{failures}\">\n  <testsuite name=\"{s}\" tests=\"{n}\" failures=\"{failures}\">",
        n = cases.len(),
        s = escape(suite)
    );
    for c in cases {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\"",
            escape(&c.class),
            escape(&c.name)
        );
        match &c.failure {
            None => out.push_str("/>\n"),
            Some(message) => {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{m}\">{m}</failure>\n    </testcase>",
                    m = escape(message)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Threshold verdicts as cases.
pub fn threshold_cases(thresholds: &[crate::record::results::ThresholdResult]) -> Vec<Case> {
    thresholds
        .iter()
        .map(|t| Case {
            class: t
                .expression
                .split('.')
                .next()
                .unwrap_or("thresholds")
                .to_string(),
            name: t.expression.clone(),
            failure: (!t.pass).then(|| {
                format!(
                    "threshold failed: {} (observed {})",
                    t.expression,
                    t.observed.map_or("n/a".into(), |v| v.to_string())
                )
            }),
        })
        .collect()
}
