//! `[thresholds]`: `"model.metric" = "op value"` pairs, checked against the enabled models and
//! the numeric fields of a model's summary before anything runs, each condition parsed once into
//! a [`Condition`].

use super::{reader::describe, Cx, Section};
use crate::thresholds::{Condition, Threshold};

pub(super) fn parse_thresholds(
    cx: &mut Cx<'_>,
    s: &mut Section<'_>,
    models: &[&str],
) -> Vec<Threshold> {
    let mut out = Vec::new();
    let keys: Vec<String> = s.table.iter().map(|(k, _)| k.to_string()).collect();
    for key in keys {
        let (k, item) = s.table.get_key_value(&key).expect("key from iter");
        let line = cx.line_of(k.span()).or_else(|| cx.line_of(item.span()));
        let path = format!("thresholds.\"{key}\"");
        match key.split_once('.') {
            Some((model, metric)) if models.contains(&model) => {
                if !crate::record::results::is_numeric_metric(metric) {
                    cx.problem(
                        line,
                        &path,
                        format!("`{metric}` is not a numeric field of a model's summary (e.g. latency_us.p99, failed, achieved_rate)"),
                    );
                }
            }
            Some((model @ ("webhook" | "websocket"), _)) => cx.problem(
                line,
                &path,
                format!("the {model} model is not enabled in this scenario"),
            ),
            _ => cx.problem(
                line,
                &path,
                "a threshold key is model.metric, e.g. \"webhook.latency_us.p99\"",
            ),
        }
        match item.as_str() {
            Some(cond) => match Condition::parse(cond) {
                Ok(condition) => out.push(Threshold {
                    metric: key.clone(),
                    condition,
                    line: line.unwrap_or(0),
                }),
                Err(_) => cx.problem(
                    line,
                    &path,
                    format!("cannot read condition \"{cond}\"; write e.g. \"< 50000\" or \"== 0\""),
                ),
            },
            None => cx.problem(
                line,
                &path,
                format!(
                    "expected a condition string like \"< 50000\", found {}",
                    describe(item)
                ),
            ),
        }
    }
    out
}
