//! Overriding one key of a scenario from the command line (`--set workload.subscribers=1000`),
//! as `sweep` and `capacity` do: the TOML text is edited with `toml_edit` and parsed again with
//! full validation, so a bad value is reported exactly as in a file, naming its key.

use std::fmt;

use toml_edit::{DocumentMut, Item, Value};

use crate::scenario::{Problem, Scenario, ScenarioError};

/// Why an override could not be applied (before any validation of the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// `--set` was not `KEY=V1,V2,...`.
    #[error("--set {text:?}: expected KEY=VALUE[,VALUE...], e.g. workload.subscribers=1000,10000")]
    Syntax {
        /// What was given.
        text: String,
    },
    /// The key path is not a dotted path of bare keys.
    #[error("`{key}`: not a key path; write dotted names like workload.events_per_second")]
    BadKey {
        /// The key as given.
        key: String,
    },
    /// The key would create a top-level table the scenario does not have (it would switch a
    /// model on, or be an unknown section).
    #[error("`{key}`: the scenario has no [{table}] table; add it to the file first")]
    NoTable {
        /// The key as given.
        key: String,
        /// Its first segment.
        table: String,
    },
    /// A segment of the path holds a value, not a table.
    #[error("`{key}`: `{segment}` is a value, not a table")]
    NotATable {
        /// The key as given.
        key: String,
        /// The segment that is not a table.
        segment: String,
    },
    /// The scenario's own text does not parse any more (should not happen for a loaded one).
    #[error("the scenario text could not be re-read: {0}")]
    Source(String),
}

/// One `KEY=V1,V2,...` argument, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// Dotted key path.
    pub key: String,
    /// Values as written, in order.
    pub values: Vec<String>,
}

impl fmt::Display for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.values.join(","))
    }
}

/// Splits `KEY=V1,V2,...`. Commas inside brackets, braces or quotes belong to the value, so a
/// TOML array or inline table can be one of the values.
pub fn parse_assignment(text: &str) -> Result<Assignment, OverrideError> {
    let syntax = || OverrideError::Syntax { text: text.into() };
    let (key, list) = text.split_once('=').ok_or_else(syntax)?;
    let key = key.trim();
    if key.is_empty() {
        return Err(syntax());
    }
    check_key(key)?;
    let values = split_values(list);
    if values.is_empty() || values.iter().any(|v| v.is_empty()) {
        return Err(syntax());
    }
    Ok(Assignment {
        key: key.into(),
        values,
    })
}

fn check_key(key: &str) -> Result<(), OverrideError> {
    let ok = key.split('.').all(|seg| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    if ok {
        Ok(())
    } else {
        Err(OverrideError::BadKey { key: key.into() })
    }
}

/// Splits a comma list at top level (not inside `[]`, `{}` or quotes), trimming each value.
pub fn split_values(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut current = String::new();
    for c in list.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() || !out.is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// A value as TOML (`1000`, `true`, `"10s"`, `[1, 2]`), or the text as a string when it is not
/// one (so `10s` needs no quotes on a command line).
pub fn value_of(text: &str) -> Value {
    let mut v = text.parse::<Value>().unwrap_or_else(|_| Value::from(text));
    // Default spacing (`key = value`) wherever it lands.
    v.decor_mut().clear();
    v
}

/// Returns `source` with `key` set to `value` (parsed by [`value_of`]). Tables below the first
/// segment are created as needed; the first segment must already be a table of the scenario
/// (or the key a top-level key such as `seed`), except `network`, which is created too.
pub fn set_key(source: &str, key: &str, value: &str) -> Result<String, OverrideError> {
    check_key(key)?;
    let mut doc: DocumentMut = source
        .parse()
        .map_err(|e: toml_edit::TomlError| OverrideError::Source(e.to_string()))?;
    let segments: Vec<&str> = key.split('.').collect();
    if segments.len() > 1 {
        let first = segments[0];
        // `[network]` is all defaults, so a sweep may add it (`--set network.rtt=...`).
        if !doc.contains_key(first) && first != "network" {
            return Err(OverrideError::NoTable {
                key: key.into(),
                table: first.into(),
            });
        }
    }
    set_in_item(doc.as_item_mut(), &segments, 0, value_of(value)).map_err(|depth| {
        OverrideError::NotATable {
            key: key.into(),
            segment: segments[..=depth].join("."),
        }
    })?;
    Ok(doc.to_string())
}

/// Sets `path[depth..]` below `item`; `Err(d)` when `path[..=d]` names a value, not a table.
fn set_in_item(item: &mut Item, path: &[&str], depth: usize, value: Value) -> Result<(), usize> {
    match item {
        Item::Table(t) if depth + 1 == path.len() => {
            t.insert(path[depth], Item::Value(value));
            Ok(())
        }
        Item::Table(t) => {
            let child = t.entry(path[depth]).or_insert_with(|| {
                let mut t = toml_edit::Table::new();
                t.set_implicit(true);
                Item::Table(t)
            });
            set_in_item(child, path, depth + 1, value)
        }
        Item::Value(v) => set_in_value(v, path, depth, value),
        _ => Err(depth.saturating_sub(1)),
    }
}

fn set_in_value(v: &mut Value, path: &[&str], depth: usize, value: Value) -> Result<(), usize> {
    let Value::InlineTable(t) = v else {
        return Err(depth.saturating_sub(1));
    };
    if depth + 1 == path.len() {
        t.insert(path[depth], value);
        return Ok(());
    }
    // Inside an inline table only inline tables may nest.
    if !t.contains_key(path[depth]) {
        t.insert(path[depth], Value::InlineTable(Default::default()));
    }
    let child = t.get_mut(path[depth]).expect("present or just inserted");
    set_in_value(child, path, depth + 1, value)
}

/// Applies `key = value` to a scenario and validates the result. Every problem of the new text
/// is reported with `origin` naming the override, so the user sees which `--set` broke it.
pub fn apply(
    scenario: &Scenario,
    key: &str,
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Scenario, ScenarioError> {
    let origin = format!("{} with --set {key}={value}", scenario.name);
    let text = set_key(&scenario.source, key, value).map_err(|e| ScenarioError {
        origin: origin.clone(),
        problems: vec![Problem {
            line: None,
            key: key.into(),
            message: e.to_string(),
        }],
    })?;
    crate::scenario::parse(&text, &scenario.name, env)
        .map_err(|problems| ScenarioError { origin, problems })
}

/// Applies several overrides in order (each validated at the end, together).
pub fn apply_all(
    scenario: &Scenario,
    pairs: &[(&str, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Scenario, ScenarioError> {
    let origin = || {
        let list: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{} with {}", scenario.name, list.join(" "))
    };
    let mut text = scenario.source.clone();
    for (key, value) in pairs {
        text = set_key(&text, key, value).map_err(|e| ScenarioError {
            origin: origin(),
            problems: vec![Problem {
                line: None,
                key: (*key).into(),
                message: e.to_string(),
            }],
        })?;
    }
    crate::scenario::parse(&text, &scenario.name, env).map_err(|problems| ScenarioError {
        origin: origin(),
        problems,
    })
}

/// Removes a key or table (dotted path) from the text, if present.
pub fn remove_key(source: &str, key: &str) -> Result<String, OverrideError> {
    let mut doc: DocumentMut = source
        .parse()
        .map_err(|e: toml_edit::TomlError| OverrideError::Source(e.to_string()))?;
    let segments: Vec<&str> = key.split('.').collect();
    let (last, parents) = segments.split_last().expect("non-empty key");
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    for seg in parents {
        match table.get_mut(seg).and_then(Item::as_table_like_mut) {
            Some(t) => table = t,
            None => return Ok(doc.to_string()),
        }
    }
    table.remove(last);
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name = \"t\"\n[workload]\nevents_per_second = 100\nduration = \"2s\"\n[webhook]\npool = 4\nretry = { attempts = 2 }\n";

    fn env(_: &str) -> Option<String> {
        None
    }

    fn base() -> Scenario {
        crate::scenario::parse(BASE, "t", &env).expect("valid base")
    }

    #[test]
    fn assignments_split_on_top_level_commas_only() {
        let a = parse_assignment("workload.subscribers=1000, 10000 ,50000").unwrap();
        assert_eq!(a.key, "workload.subscribers");
        assert_eq!(a.values, ["1000", "10000", "50000"]);
        let a = parse_assignment("workload.shape={ ramp = [1, 2] },\"poisson\"").unwrap();
        assert_eq!(a.values, ["{ ramp = [1, 2] }", "\"poisson\""]);
        for bad in [
            "workload.subscribers",
            "=1,2",
            "workload.subscribers=",
            "a=1,,2",
        ] {
            assert!(
                matches!(parse_assignment(bad), Err(OverrideError::Syntax { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_assignment("work load=1"),
            Err(OverrideError::BadKey { .. })
        ));
    }

    #[test]
    fn values_are_toml_where_they_can_be_and_strings_otherwise() {
        assert_eq!(value_of("1000").as_integer(), Some(1000));
        assert_eq!(value_of("0.5").as_float(), Some(0.5));
        assert_eq!(value_of("true").as_bool(), Some(true));
        assert_eq!(value_of("10s").as_str(), Some("10s"));
        assert_eq!(value_of("\"10s\"").as_str(), Some("10s"));
        assert!(value_of("[1, 2]").is_array());
    }

    #[test]
    fn a_valid_override_changes_the_scenario() {
        let s = apply(&base(), "workload.events_per_second", "250", &env).unwrap();
        assert_eq!(s.workload.shape.peak_rate_per_sec(), Some(250.0));
        let s = apply(&base(), "workload.duration", "5s", &env).unwrap();
        assert_eq!(s.workload.duration_ns, 5_000_000_000);
        // Into an inline table, and a sub-table that is not written yet.
        let s = apply(&base(), "webhook.retry.attempts", "7", &env).unwrap();
        assert_eq!(s.webhook.unwrap().retry.attempts, 7);
        let s = apply(&base(), "webhook.receiver.delay", "10ms", &env).unwrap();
        match s.webhook.unwrap().target {
            crate::scenario::WebhookTarget::Builtin(r) => assert_eq!(r.delay_ns, 10_000_000),
            other => panic!("{other:?}"),
        }
        assert!(s.source.contains("delay = \"10ms\""), "{}", s.source);
    }

    #[test]
    fn a_sweep_over_the_network_adds_the_table_the_scenario_lacks() {
        assert!(base().network.is_none());
        let s = apply(&base(), "network.rtt", "80ms", &env).unwrap();
        let n = s.network.expect("[network] created");
        assert_eq!(n.rtt_ns, 80_000_000);
        // Any other missing table is still a mistake.
        assert!(apply(&base(), "nosuch.rtt", "80ms", &env).is_err());
    }

    #[test]
    fn a_bad_key_or_value_is_a_scenario_error_naming_the_key() {
        let cases = [
            ("workload.subscriberz", "10", "unknown key"),
            ("workload.subscribers", "many", "expected an integer"),
            ("workload.events_per_second", "-5", "greater than 0"),
            ("workload.duration", "soon", ""),
            ("websocket.mode", "push", "no [websocket] table"),
            ("workload.duration.x", "1", "is a value, not a table"),
        ];
        for (key, value, message) in cases {
            let e = apply(&base(), key, value, &env).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(&format!("`{key}")), "{key}: {text}");
            assert!(text.contains(message), "{key}: {text}");
            assert!(text.contains(&format!("--set {key}={value}")), "{text}");
        }
    }

    #[test]
    fn removing_a_table_or_key() {
        let text = remove_key(BASE, "webhook").unwrap();
        assert!(!text.contains("[webhook]"));
        let text = remove_key(BASE, "webhook.retry.attempts").unwrap();
        assert!(!text.contains("attempts"), "{text}");
        assert_eq!(remove_key(BASE, "nothing.here").unwrap(), BASE);
    }
}
