//! `headers` of a model table: extra request headers, `{ "Authorization" = "Bearer {subscriber}",
//! "X-Tenant" = "env:TENANT" }`. A value may hold `{subscriber}` once; a whole value `env:NAME`
//! is read from the environment (and, like every secret, never printed or written). Names are
//! HTTP tokens; the headers the harness writes itself (framing, Host, signatures) are refused.

use super::{Cx, Section};
use crate::scenario::{ExtraHeader, HeaderTemplate};

/// Headers the request already carries: a second copy would break framing or signing.
const RESERVED: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "upgrade",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature-256",
    "x-github-delivery",
    "stripe-signature",
    "x-pushbench-t",
];

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The section's `headers`, checked; empty when absent.
pub(super) fn headers(
    cx: &mut Cx<'_>,
    s: &mut Section<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<ExtraHeader> {
    let Some((t, _)) = cx.table(s, "headers") else {
        return Vec::new();
    };
    let mut out: Vec<ExtraHeader> = Vec::new();
    for (name, item) in t.table.iter() {
        let key = t.child(&format!("\"{name}\""));
        let line = t
            .table
            .get_key_value(name)
            .and_then(|(k, _)| cx.line_of(k.span()));
        if !is_token(name) {
            cx.problem(
                line,
                &key,
                "not a header name (letters, digits and !#$%&'*+-.^_`|~)",
            );
            continue;
        }
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            cx.problem(line, &key, "pushbench writes this header itself");
            continue;
        }
        if out.iter().any(|h| h.name.eq_ignore_ascii_case(name)) {
            cx.problem(line, &key, "given twice (header names ignore case)");
            continue;
        }
        let Some(text) = item.as_str() else {
            cx.problem(line, &key, "expected a string");
            continue;
        };
        let (value, secret) = match text.strip_prefix("env:") {
            Some(var) => match env(var) {
                Some(v) if !v.is_empty() => (v, true),
                _ => {
                    cx.problem(
                        line,
                        &key,
                        format!("environment variable `{var}` is not set (or is empty)"),
                    );
                    continue;
                }
            },
            None => (text.to_string(), false),
        };
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            // Never quote it: it may be a secret.
            cx.problem(line, &key, "the value holds a line break or NUL");
            continue;
        }
        let value = match value.split_once("{subscriber}") {
            Some((_, rest)) if rest.contains("{subscriber}") => {
                cx.problem(line, &key, "{subscriber} may appear only once");
                continue;
            }
            Some((prefix, suffix)) => HeaderTemplate {
                prefix: prefix.to_string(),
                suffix: Some(suffix.to_string()),
            },
            None => HeaderTemplate {
                prefix: value,
                suffix: None,
            },
        };
        out.push(ExtraHeader {
            name: name.to_string(),
            value,
            secret,
        });
    }
    out
}
