//! `[websocket]`: the WebSocket fleet (target url, mode, connect rate, heartbeats, reconnect
//! backoff, subscribe message, drain, JSON pointers into an external server's events) and the
//! built-in server's `[websocket.server]` (processes, an upgrade token, a one-off drop, a
//! stall), the upgrade's extra `headers`, and `tls` (`wss://`, or the built-in server over TLS).
//! `[sse]` and `[longpoll]` are the same fleet over HTTP; long polling adds `hold`,
//! `connection` and `events_field`.

use super::{backoff, faults, headers, max_wait, tls::tls, url::target_url, Cx, Section};
use crate::scenario::{
    DropFault, Jitter, PollSettings, PushProtocol, ReconnectPolicy, Secret, WebSocketConfig,
    WsMode, WsServerConfig, WsTarget,
};

/// `[websocket]`, or `[sse]` (`protocol`): the same fleet, reading an event stream over HTTP
/// instead (no echo, no pings, no subscribe message).
pub(super) fn websocket(
    cx: &mut Cx<'_>,
    s: &mut Section<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    protocol: PushProtocol,
) -> Option<WebSocketConfig> {
    let before = cx.problems.len();
    let name = protocol.section();
    let scheme = match protocol {
        PushProtocol::WebSocket => "ws",
        PushProtocol::Sse | PushProtocol::LongPoll => "http",
    };
    let (external, is_builtin) = target_url(cx, s, scheme);
    let secure = external.as_ref().is_some_and(|u| u.secure);
    let tls = tls(cx, s, is_builtin, secure);
    let modes: &[(&str, WsMode)] = match protocol {
        PushProtocol::WebSocket => &[
            ("push", WsMode::Push),
            ("echo", WsMode::Echo),
            ("idle", WsMode::Idle),
        ],
        PushProtocol::Sse | PushProtocol::LongPoll => {
            &[("push", WsMode::Push), ("idle", WsMode::Idle)]
        }
    };
    let mode = cx.choice(s, "mode", modes).unwrap_or(WsMode::Push);
    let connect_rate = cx.positive_rate(s, "connect_rate").unwrap_or(5000.0);
    // An event stream has no pings (servers send comments to keep it open).
    let ping_interval_ns = match (protocol == PushProtocol::WebSocket)
        .then(|| cx.duration(s, "ping_interval"))
        .flatten()
    {
        Some((ns, line)) if ns < 10_000_000 => {
            cx.problem(
                line,
                &format!("{name}.ping_interval"),
                "must be at least 10ms",
            );
            ns
        }
        Some((ns, _)) => ns,
        None => 15_000_000_000,
    };
    let reconnect = match cx.table(s, "reconnect") {
        Some((mut r, _)) => {
            let (initial_ns, max_ns, jitter) = backoff(cx, &mut r, 100_000_000, 10_000_000_000);
            cx.finish(r);
            ReconnectPolicy {
                initial_ns,
                max_ns,
                jitter,
            }
        }
        None => ReconnectPolicy {
            initial_ns: 100_000_000,
            max_ns: 10_000_000_000,
            jitter: Jitter::Full,
        },
    };
    let subscribe = match protocol {
        PushProtocol::WebSocket => cx.string(s, "subscribe").map(|(t, _)| t.to_string()),
        PushProtocol::Sse | PushProtocol::LongPoll => None,
    };
    let drain_ns = cx
        .duration(s, "drain")
        .map(|d| d.0)
        .unwrap_or(2_000_000_000);
    let max_wait_ns = max_wait(cx, s, name);
    let connections_per_worker = cx
        .integer(s, "connections_per_worker", 1, 1_000_000)
        .map(|v| v as usize);
    let mut pointer = |cx: &mut Cx<'_>, key: &'static str| {
        let (text, f) = cx.string(s, key)?;
        let path = format!("{name}.{key}");
        if is_builtin {
            cx.problem(f.line, &path, "only for external servers (the built-in server's events carry their own time and sequence)");
        } else if mode != WsMode::Push {
            cx.problem(f.line, &path, "only applies to mode = \"push\"");
        } else if !text.is_empty() && !text.starts_with('/') {
            cx.problem(
                f.line,
                &path,
                format!(
                    "\"{text}\" is not a JSON pointer; write e.g. \"/{text}\" or \"/data/{text}\""
                ),
            );
        }
        Some(text.to_string())
    };
    let timestamp_field = pointer(cx, "timestamp_field");
    let sequence_field = pointer(cx, "sequence_field");
    let poll = match protocol {
        PushProtocol::LongPoll => {
            let events_field = pointer(cx, "events_field").unwrap_or_else(|| "/events".into());
            let hold_ns = match cx.duration(s, "hold") {
                Some((ns, line)) if !(100_000_000..=120_000_000_000).contains(&ns) => {
                    cx.problem(line, "longpoll.hold", "must be between 100ms and 120s");
                    ns
                }
                Some((ns, _)) => ns,
                None => 20_000_000_000,
            };
            let fresh = cx
                .choice(s, "connection", &[("keepalive", false), ("fresh", true)])
                .unwrap_or(false);
            Some(PollSettings {
                hold_ns,
                fresh,
                events_field,
            })
        }
        _ => None,
    };
    let headers = headers::headers(cx, s, env);
    let server = match cx.table(s, "server") {
        Some((mut sv, f)) => {
            if !is_builtin {
                cx.problem(
                    f.line,
                    &format!("{name}.server"),
                    "only applies when url = \"builtin\"",
                );
            }
            let processes = cx.integer(&mut sv, "processes", 1, 256).map(|v| v as usize);
            let mut drop = None;
            if let Some((mut d, f)) = cx.table(&mut sv, "drop") {
                let at = cx.duration(&mut d, "at");
                let fraction = cx.number(&mut d, "fraction").map(|(v, f)| (v, f.line));
                let code = match cx.field(&mut d, "code") {
                    None => Some(1001),
                    Some(c) => match (c.item.as_integer(), c.item.as_str()) {
                        (Some(v), _) if (1000..=4999).contains(&v) => Some(v as u16),
                        (_, Some("abrupt")) => Some(0),
                        _ => {
                            cx.problem(c.line, &format!("{name}.server.drop.code"), "a close code 1000-4999, or \"abrupt\" to reset without a close frame");
                            None
                        }
                    },
                };
                let per_mille = match fraction {
                    None => Some(1000),
                    Some((v, _)) if (0.0..=1.0).contains(&v) => Some((v * 1000.0).round() as u32),
                    Some((v, line)) => {
                        cx.problem(
                            line,
                            &format!("{name}.server.drop.fraction"),
                            format!("must be between 0 and 1 (got {v})"),
                        );
                        None
                    }
                };
                match (at, per_mille, code) {
                    (Some((at_ns, _)), Some(per_mille), Some(code)) => {
                        drop = Some(DropFault {
                            at_ns,
                            per_mille,
                            code,
                        })
                    }
                    (None, _, _) => cx.problem(
                        f.line,
                        &format!("{name}.server.drop.at"),
                        "missing; when to drop, e.g. at = \"3s\"",
                    ),
                    _ => {}
                }
                cx.finish(d);
            }
            let stall = faults::window(cx, &mut sv, "stall");
            let token = match cx.string(&mut sv, "token") {
                Some((text, tf)) => match text.strip_prefix("env:") {
                    Some(var) => match env(var) {
                        Some(v) if !v.is_empty() => Some(Secret(v)),
                        _ => {
                            cx.problem(
                                tf.line,
                                &format!("{name}.server.token"),
                                format!("environment variable `{var}` is not set (or is empty)"),
                            );
                            None
                        }
                    },
                    None if text.is_empty() => {
                        cx.problem(tf.line, &format!("{name}.server.token"), "is empty");
                        None
                    }
                    None => Some(Secret(text.to_string())),
                },
                None => None,
            };
            cx.finish(sv);
            WsServerConfig {
                processes,
                token,
                drop,
                stall,
            }
        }
        None => WsServerConfig::default(),
    };
    if cx.problems.len() > before {
        return None;
    }
    Some(WebSocketConfig {
        target: match external {
            Some(u) => WsTarget::External(u),
            None => WsTarget::Builtin(server),
        },
        mode,
        connect_rate,
        ping_interval_ns,
        reconnect,
        subscribe,
        drain_ns,
        max_wait_ns,
        connections_per_worker,
        timestamp_field,
        sequence_field,
        headers,
        tls,
        protocol,
        poll,
    })
}
