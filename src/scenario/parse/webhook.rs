//! `[webhook]`: the provider side of the webhook model (target url, connections, signing scheme
//! and secret, timeout, drain, workers, backlog); its `retry` and `receiver` tables are read by
//! [`super::faults`].

use super::{faults, headers::headers, max_wait, tls::tls, url::target_url, Cx, Section};
use crate::scenario::{
    ConnectionMode, ReceiverConfig, RetryPolicy, Secret, SignatureScheme, WebhookConfig,
    WebhookTarget,
};

pub(super) fn webhook(
    cx: &mut Cx<'_>,
    s: &mut Section<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    payload_bytes: usize,
) -> Option<WebhookConfig> {
    let before = cx.problems.len();
    let (external, is_builtin) = target_url(cx, s, "http");
    let secure = external.as_ref().is_some_and(|u| u.secure);
    let tls = tls(cx, s, is_builtin, secure);
    let headers = headers(cx, s, env);
    let connection = cx
        .choice(
            s,
            "connection",
            &[
                ("keepalive", ConnectionMode::KeepAlive),
                ("fresh", ConnectionMode::Fresh),
            ],
        )
        .unwrap_or(ConnectionMode::KeepAlive);
    let pool = cx.integer(s, "pool", 1, 10_000).unwrap_or(64) as usize;
    let signature = cx
        .choice(s, "signature", &SignatureScheme::ALL.map(|s| (s.name(), s)))
        .unwrap_or(SignatureScheme::Standard);

    let mut secret = None;
    if let Some((text, f)) = cx.string(s, "secret") {
        let value = match text.strip_prefix("env:") {
            Some(var) => match env(var) {
                Some(v) if !v.is_empty() => Some(v),
                _ => {
                    cx.problem(
                        f.line,
                        "webhook.secret",
                        format!("environment variable `{var}` is not set (or is empty)"),
                    );
                    None
                }
            },
            None => Some(text.to_string()),
        };
        if let Some(v) = value {
            // Say what is wrong with the secret without ever printing it.
            if let Err(msg) = signature.key_bytes(&v) {
                cx.problem(f.line, "webhook.secret", msg);
            }
            secret = Some(Secret(v));
        }
    } else if !is_builtin && signature != SignatureScheme::None {
        cx.problem(None, "webhook.secret", "required when url is not \"builtin\" and signature is not \"none\"; use secret = \"env:NAME\"");
    }

    let timeout_ns = match cx.duration(s, "timeout") {
        Some((0, line)) => {
            cx.problem(line, "webhook.timeout", "must be longer than 0s");
            0
        }
        Some((ns, _)) => ns,
        None => 10_000_000_000,
    };
    let retry = match cx.table(s, "retry") {
        Some((mut r, _)) => {
            let policy = faults::retry(cx, &mut r);
            cx.finish(r);
            policy
        }
        None => RetryPolicy::default(),
    };
    let drain_ns = cx
        .duration(s, "drain")
        .map(|(ns, _)| ns)
        .unwrap_or(10_000_000_000);
    let workers = cx.integer(s, "workers", 1, 256).map(|w| w as usize);
    let max_backlog = cx
        .integer(s, "max_backlog", 1, 100_000_000)
        .unwrap_or(1_000_000) as usize;
    let max_wait_ns = max_wait(cx, s, "webhook");

    let receiver = match cx.table(s, "receiver") {
        Some((mut r, f)) => {
            if !is_builtin {
                cx.problem(
                    f.line,
                    "webhook.receiver",
                    "only applies when url = \"builtin\"",
                );
            }
            let cfg = faults::receiver(cx, &mut r, payload_bytes);
            cx.finish(r);
            cfg
        }
        None => ReceiverConfig::default(),
    };

    if cx.problems.len() > before {
        return None;
    }
    let target = match external {
        Some(u) => WebhookTarget::External(u),
        None => WebhookTarget::Builtin(receiver),
    };
    Some(WebhookConfig {
        target,
        connection,
        pool,
        signature,
        secret,
        timeout_ns,
        retry,
        drain_ns,
        workers,
        max_backlog,
        max_wait_ns,
        tls,
        headers,
    })
}
