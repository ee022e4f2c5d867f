//! Scenario parsing: good files load, bad ones report every problem with its key and line.

use pushbench::scenario::{self, parse, ConnectionMode, Jitter, Problem, WebhookTarget};
use pushbench::schedule::Shape;
use pushbench::webhook::sign::SignatureScheme;

fn env(name: &str) -> Option<String> {
    match name {
        "HOOK_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        _ => None,
    }
}

fn problems(src: &str) -> Vec<Problem> {
    parse(src, "t", &env).expect_err("should be rejected")
}

fn has(problems: &[Problem], key: &str, line: usize, text: &str) -> bool {
    problems
        .iter()
        .any(|p| p.key == key && p.line == Some(line) && p.message.contains(text))
}

#[test]
fn the_embedded_default_scenario_is_valid() {
    let s = scenario::default_scenario();
    assert_eq!(s.name, "quick");
    let w = s.webhook.expect("webhook model");
    assert!(matches!(w.target, WebhookTarget::Builtin(_)));
    assert_eq!(
        s.workload.duration_ns + s.workload.warmup_ns,
        12_000_000_000
    );
}

#[test]
fn the_embedded_wan_scenario_runs_every_model_behind_a_50ms_link_over_tls() {
    // By name, as `pushbench run wan` takes it (no file of that name here).
    let s = scenario::load_or_embedded(std::path::Path::new("wan")).unwrap();
    assert_eq!(s.name, "wan");
    assert_eq!(s.network.expect("[network]").rtt_ns, 50_000_000);
    let w = s.webhook.expect("webhook model");
    assert!(w.tls.is_some() && w.connection == ConnectionMode::Fresh);
    for m in [s.websocket, s.sse, s.longpoll] {
        assert!(m.expect("every model").tls.is_some());
    }
    // Not a name of an embedded scenario: the file's error.
    let e = scenario::load_or_embedded(std::path::Path::new("no-such-scenario")).unwrap_err();
    assert!(e.to_string().contains("cannot read the file"), "{e}");
}

#[test]
fn a_full_file_parses_into_typed_settings() {
    let src = r#"
name = "full"
seed = 9
[workload]
shape = { steps = [[100, "2s"], [500, "3s"]] }
subscribers = 50
fanout = 2
payload_bytes = 1024
duration = "5s"
warmup = "500ms"
[webhook]
url = "http://127.0.0.1:9000/in/{subscriber}/events"
connection = "fresh"
pool = 8
signature = "github"
secret = "env:HOOK_SECRET"
timeout = "2s"
retry = { attempts = 3, initial = "100ms", max = "1s", jitter = "equal" }
[thresholds]
"webhook.latency_us.p99" = "< 50000"
"#;
    let s = parse(src, "t", &env).unwrap();
    assert_eq!((s.name.as_str(), s.seed), ("full", 9));
    assert_eq!(s.workload.fanout, 2);
    assert!(matches!(&s.workload.shape, Shape::Steps(steps) if steps.len() == 2));
    let w = s.webhook.unwrap();
    assert_eq!(w.connection, ConnectionMode::Fresh);
    assert_eq!(w.signature, SignatureScheme::Github);
    assert_eq!(w.retry.jitter, Jitter::Equal);
    assert_eq!(w.retry.attempts, 3);
    match w.target {
        WebhookTarget::External(u) => {
            assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 9000));
            assert_eq!(u.path_prefix, "/in/");
            assert_eq!(u.path_suffix.as_deref(), Some("/events"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.thresholds[0].line, 20);
}

#[test]
fn every_shape_form_is_accepted() {
    for shape in [
        r#"shape = "poisson""#,
        r#"shape = "constant""#,
        r#"shape = { ramp = [10, 5000] }"#,
        r#"shape = { burst = 500, every = "1s" }"#,
    ] {
        let src =
            format!("[workload]\nevents_per_second = 100\n{shape}\nduration = \"2s\"\n[webhook]\n");
        parse(&src, "t", &env).unwrap_or_else(|p| panic!("{shape}: {p:?}"));
    }
}

#[test]
fn all_problems_are_reported_together_with_keys_and_lines() {
    let src = r#"name = "x"
[workload]
events_per_second = -5
duration = "10 parsecs"
payload_bytes = "big"
colour = "blue"
[webhook]
url = "localhost:8080/hooks"
secret = "env:NOT_SET_ANYWHERE"
signature = "md5"
retry = { attempts = 0 }
"#;
    let p = problems(src);
    assert!(
        has(&p, "workload.events_per_second", 3, "greater than 0"),
        "{p:#?}"
    );
    assert!(has(&p, "workload.duration", 4, "unknown unit"), "{p:#?}");
    assert!(
        has(
            &p,
            "workload.payload_bytes",
            5,
            "expected an integer, found a string"
        ),
        "{p:#?}"
    );
    assert!(has(&p, "workload.colour", 6, "unknown key"), "{p:#?}");
    assert!(has(&p, "webhook.url", 8, "no scheme"), "{p:#?}");
    assert!(has(&p, "webhook.secret", 9, "NOT_SET_ANYWHERE"), "{p:#?}");
    assert!(has(&p, "webhook.signature", 10, "\"md5\""), "{p:#?}");
    assert!(
        has(&p, "webhook.retry.attempts", 11, "at least 1"),
        "{p:#?}"
    );
    assert_eq!(p.len(), 8, "{p:#?}");
}

#[test]
fn malformed_files_get_one_clear_problem_never_a_panic() {
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        ("   \n# only a comment\n", "missing [workload]"),
        ("[workload\nduration = 1", "not valid TOML"),
        ("a = 1\na = 2\n", "not valid TOML"),
        ("\u{0}\u{1}\u{2}garbage", "not valid TOML"),
        (
            "[workload]\nevents_per_second = 1e999\nduration=\"1s\"\n[webhook]\n",
            "",
        ),
        (
            "[workload]\nevents_per_second = 99999999999999999999\n",
            "not valid TOML",
        ),
    ];
    for (src, text) in cases {
        let p = problems(src);
        assert!(!p.is_empty());
        assert!(p[0].to_string().contains(text), "{src:?}: {p:?}");
    }
}

#[test]
fn missing_pieces_are_named() {
    let p = problems("[webhook]\n");
    assert!(p.iter().any(|p| p.key == "workload"), "{p:?}");
    let p = problems("[workload]\nevents_per_second = 10\nduration = \"1s\"\n");
    assert!(
        p.iter().any(|p| p.message.contains("no model enabled")),
        "{p:?}"
    );
    let p = problems("[workload]\nduration = \"1s\"\n[webhook]\n");
    assert!(
        p.iter().any(|p| p.key == "workload.events_per_second"),
        "{p:?}"
    );
    let p = problems(
        "[workload]\nevents_per_second = 1\nduration = \"1s\"\n[webhook]\nurl = \"http://h:1/\"\n",
    );
    assert!(
        p.iter()
            .any(|p| p.key == "webhook.secret" && p.message.contains("required")),
        "{p:?}"
    );
}

#[test]
fn values_out_of_range_are_refused() {
    let base = |extra: &str| {
        format!("[workload]\nevents_per_second = 10\nduration = \"1s\"\n{extra}\n[webhook]\n")
    };
    let p = problems(&base("subscribers = 2\nfanout = 3"));
    assert!(
        has(&p, "workload.fanout", 5, "more than the 2 subscribers"),
        "{p:?}"
    );
    let p = problems(&base("payload_bytes = 10"));
    assert!(has(&p, "workload.payload_bytes", 4, "at least"), "{p:?}");
    let p = problems(&base("shape = { ramp = [0, 0] }"));
    assert!(p.iter().any(|p| p.key == "workload.shape.ramp"), "{p:?}");
    let p = problems(&base("shape = { burst = 10 }"));
    assert!(p.iter().any(|p| p.key == "workload.shape.every"), "{p:?}");
    let p = problems(&base("shape = \"zigzag\""));
    assert!(has(&p, "workload.shape", 4, "unknown shape"), "{p:?}");
    let p = problems("[workload]\nevents_per_second = 10\nduration = 30\n[webhook]\n");
    assert!(has(&p, "workload.duration", 3, "duration string"), "{p:?}");
}

#[test]
fn webhook_keys_are_checked() {
    let base = |extra: &str| {
        format!("[workload]\nevents_per_second = 10\nduration = \"1s\"\n[webhook]\n{extra}\n")
    };
    let p = problems(&base(
        "url = \"https://example.test/hooks\"\nsecret = \"s\"\ntls = { ca_file = \"no-such.pem\", verify = \"yes\" }",
    ));
    assert!(has(&p, "webhook.tls.ca_file", 7, "no such file"), "{p:?}");
    assert!(has(&p, "webhook.tls.verify", 7, "true or false"), "{p:?}");
    let p = problems(&base(
        "url = \"http://example.test/hooks\"\nsecret = \"s\"\ntls = true",
    ));
    assert!(has(&p, "webhook.tls", 7, "plaintext"), "{p:?}");
    let p = problems(&base("tls = { ca_file = \"ca.pem\" }"));
    assert!(
        has(&p, "webhook.tls.ca_file", 5, "made for the run"),
        "{p:?}"
    );
    let p = problems(&base("url = \"wss://example.test/hooks\"\nsecret = \"s\""));
    assert!(has(&p, "webhook.url", 5, "unsupported scheme"), "{p:?}");
    let p = problems(&base(
        "[webhook.headers]\n\"Bad Name\" = \"x\"\n\"Content-Length\" = \"5\"\n\"X-Token\" = \"env:PB_UNSET_VAR\"\n\"X-Two\" = \"{subscriber}{subscriber}\"\n\"X-Num\" = 5",
    ));
    assert!(
        has(&p, "webhook.headers.\"Bad Name\"", 6, "not a header name"),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "webhook.headers.\"Content-Length\"",
            7,
            "writes this header itself"
        ),
        "{p:?}"
    );
    assert!(
        has(&p, "webhook.headers.\"X-Token\"", 8, "PB_UNSET_VAR"),
        "{p:?}"
    );
    assert!(
        has(&p, "webhook.headers.\"X-Two\"", 9, "only once"),
        "{p:?}"
    );
    assert!(
        has(&p, "webhook.headers.\"X-Num\"", 10, "expected a string"),
        "{p:?}"
    );
    let p = problems(&base("pool = 0"));
    assert!(has(&p, "webhook.pool", 5, "at least 1"), "{p:?}");
    let p = problems(&base("connection = \"sometimes\""));
    assert!(has(&p, "webhook.connection", 5, "\"keepalive\""), "{p:?}");
    let p = problems(&base("secret = \"whsec_***\""));
    assert!(has(&p, "webhook.secret", 5, "base64"), "{p:?}");
    assert!(!p[0].message.contains("***"), "the secret is never echoed");
    let p = problems(&base("timeout = \"0s\""));
    assert!(has(&p, "webhook.timeout", 5, "longer than 0s"), "{p:?}");
    let p = problems(&base(
        "retry = { attempts = 3, initial = \"2s\", max = \"1s\" }",
    ));
    assert!(p.iter().any(|p| p.key == "webhook.retry.max"), "{p:?}");
    let p = problems(&base(
        "[webhook.receiver]\nfail_rate = 1.5\nstall = { at = \"1s\" }",
    ));
    assert!(
        has(&p, "webhook.receiver.fail_rate", 6, "between 0 and 1"),
        "{p:?}"
    );
    assert!(p.iter().any(|p| p.key == "webhook.receiver.stall"), "{p:?}");
    let ws = "[workload]\nevents_per_second = 10\nduration = \"1s\"\n[websocket]\nheaders = { \"Host\" = \"x\" }\n[websocket.server]\ntoken = \"env:PB_UNSET_TOKEN\"\n";
    let p = problems(ws);
    assert!(
        has(
            &p,
            "websocket.headers.\"Host\"",
            5,
            "writes this header itself"
        ),
        "{p:?}"
    );
    assert!(
        has(&p, "websocket.server.token", 7, "PB_UNSET_TOKEN"),
        "{p:?}"
    );
    let literal = pushbench::scenario::parse(
        "[workload]\nevents_per_second = 10\nduration = \"1s\"\n[websocket]\n[websocket.server]\ntoken = \"hunter2\"\n",
        "t",
        &|_| None,
    )
    .unwrap();
    let saved = literal.redacted_source();
    assert!(
        saved.contains("token = \"<redacted>\"") && !saved.contains("hunter2"),
        "{saved}"
    );
}

#[test]
fn thresholds_need_a_model_metric_and_a_condition() {
    let src = "[workload]\nevents_per_second = 10\nduration = \"1s\"\n[webhook]\n[thresholds]\n\"latency\" = \"< 5\"\n\"webhook.failed\" = \"about zero\"\n\"webhook.retries\" = 3\n";
    let p = problems(src);
    assert!(
        has(&p, "thresholds.\"latency\"", 6, "model.metric"),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "thresholds.\"webhook.failed\"",
            7,
            "cannot read condition"
        ),
        "{p:?}"
    );
    assert!(
        has(
            &p,
            "thresholds.\"webhook.retries\"",
            8,
            "expected a condition"
        ),
        "{p:?}"
    );
}

#[test]
fn a_scenario_file_that_is_not_utf8_is_refused_by_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bin.toml");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let err = scenario::load(&path).unwrap_err();
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}

#[test]
fn thresholds_must_name_a_numeric_summary_field_of_an_enabled_model() {
    let src = "[workload]\nevents_per_second = 10\nduration = \"1s\"\n[webhook]\n[thresholds]\n\"webhook.latency_us.p42\" = \"< 5\"\n\"webhook.model\" = \"== 1\"\n\"websocket.failed\" = \"== 0\"\n\"webhook.errors.timeout\" = \"== 0\"\n\"webhook.receiver.bad_signature\" = \"== 0\"\n";
    let p = problems(src);
    assert!(
        has(
            &p,
            "thresholds.\"webhook.latency_us.p42\"",
            6,
            "not a numeric field"
        ),
        "{p:?}"
    );
    assert!(
        has(&p, "thresholds.\"webhook.model\"", 7, "not a numeric field"),
        "{p:?}"
    );
    assert!(
        has(&p, "thresholds.\"websocket.failed\"", 8, "not enabled"),
        "{p:?}"
    );
    assert_eq!(
        p.len(),
        3,
        "errors.timeout and receiver.bad_signature are valid: {p:?}"
    );
}

#[test]
fn websocket_keys_parse_into_typed_settings() {
    use pushbench::scenario::{WsMode, WsTarget};
    let src = r#"
[workload]
events_per_second = 10
subscribers = 100
duration = "1s"
[websocket]
url = "ws://127.0.0.1:9001/feed/{subscriber}"
mode = "echo"
connect_rate = 2500
ping_interval = "5s"
reconnect = { initial = "50ms", max = "2s", jitter = "equal" }
subscribe = "{\"op\":\"subscribe\",\"id\":\"{subscriber}\"}"
"#;
    let s = parse(src, "t", &env).unwrap();
    let w = s.websocket.unwrap();
    assert_eq!(
        (w.mode, w.connect_rate, w.ping_interval_ns),
        (WsMode::Echo, 2500.0, 5_000_000_000)
    );
    assert_eq!(w.reconnect.jitter, Jitter::Equal);
    assert_eq!(
        w.subscribe.as_deref(),
        Some("{\"op\":\"subscribe\",\"id\":\"{subscriber}\"}")
    );
    match w.target {
        WsTarget::External(u) => assert_eq!((u.port, u.path(7).as_str()), (9001, "/feed/7")),
        other => panic!("{other:?}"),
    }
    assert!(s.webhook.is_none(), "a websocket-only scenario is fine");

    let builtin = "[workload]\nevents_per_second = 10\nduration = \"1s\"\n[websocket]\n[websocket.server]\nprocesses = 3\ndrop = { at = \"2s\", fraction = 0.25, code = \"abrupt\" }\n";
    let w = parse(builtin, "t", &env).unwrap().websocket.unwrap();
    match w.target {
        WsTarget::Builtin(server) => {
            assert_eq!(server.processes, Some(3));
            let d = server.drop.unwrap();
            assert_eq!((d.at_ns, d.per_mille, d.code), (2_000_000_000, 250, 0));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sse_reads_like_websocket_without_its_websocket_keys() {
    let base = |extra: &str| {
        format!("[workload]\nevents_per_second = 10\nduration = \"1s\"\n[sse]\n{extra}\n")
    };
    let s = parse(&base("connect_rate = 100"), "t", &env).unwrap();
    let sse = s.sse.expect("the sse model runs");
    assert_eq!(sse.protocol, scenario::PushProtocol::Sse);
    assert_eq!(sse.connect_rate, 100.0);
    assert!(s.websocket.is_none());
    let s = parse(
        &base("url = \"https://x:8443/events/{subscriber}\""),
        "t",
        &env,
    )
    .unwrap();
    assert!(s.sse.unwrap().tls.is_some());
    let p = problems(&base("mode = \"echo\""));
    assert!(has(&p, "sse.mode", 5, "\"push\""), "{p:?}");
    let p = problems(&base("url = \"ws://x:1/events\""));
    assert!(has(&p, "sse.url", 5, "http://"), "{p:?}");
    let p = problems(&base("ping_interval = \"5s\""));
    assert!(has(&p, "sse.ping_interval", 5, "unknown key"), "{p:?}");
    let p = problems(&base(
        "[sse.server]\ndrop = { fraction = 2.0, at = \"1s\" }",
    ));
    assert!(
        has(&p, "sse.server.drop.fraction", 6, "between 0 and 1"),
        "{p:?}"
    );
}

#[test]
fn websocket_mistakes_are_named() {
    let base = |extra: &str| {
        format!("[workload]\nevents_per_second = 10\nduration = \"1s\"\n[websocket]\n{extra}\n")
    };
    let p = problems(&base("mode = \"broadcast\""));
    assert!(has(&p, "websocket.mode", 5, "\"push\""), "{p:?}");
    let p = problems(&base("url = \"http://x:1/ws\""));
    assert!(has(&p, "websocket.url", 5, "ws://"), "{p:?}");
    let wss = parse(&base("url = \"wss://x:1/ws\""), "t", &env).expect("wss is spoken");
    let ws = wss.websocket.unwrap();
    assert_eq!(ws.tls, Some(scenario::TlsSettings::default()));
    let p = problems(&base("url = \"ws://x:1/ws\"\ntls = { verify = false }"));
    assert!(has(&p, "websocket.tls", 6, "plaintext"), "{p:?}");
    let p = problems(&base(
        "url = \"wss://x:1/ws\"\ntls = { ca_file = \"/nonexistent/ca.pem\" }",
    ));
    assert!(has(&p, "websocket.tls.ca_file", 6, "no such file"), "{p:?}");
    let p = problems(&base("connect_rate = 0"));
    assert!(
        has(&p, "websocket.connect_rate", 5, "greater than 0"),
        "{p:?}"
    );
    let p = problems(&base("ping_interval = \"1ms\""));
    assert!(
        has(&p, "websocket.ping_interval", 5, "at least 10ms"),
        "{p:?}"
    );
    let p = problems(&base(
        "[websocket.server]\ndrop = { at = \"1s\", code = 99 }",
    ));
    assert!(has(&p, "websocket.server.drop.code", 6, "abrupt"), "{p:?}");
    let p = problems(&base("timestamp_field = \"/ts\""));
    assert!(
        has(
            &p,
            "websocket.timestamp_field",
            5,
            "only for external servers"
        ),
        "{p:?}"
    );
    let p = problems(&base("url = \"ws://h:1/x\"\nsequence_field = \"seq\""));
    assert!(
        has(&p, "websocket.sequence_field", 6, "not a JSON pointer"),
        "{p:?}"
    );
    let p =
        problems("[workload]\nshape = \"max\"\nduration = \"1s\"\n[websocket]\nmode = \"push\"\n");
    assert!(has(&p, "websocket.mode", 5, "closed loop"), "{p:?}");
    let p = problems(&base("hearbeat = \"1s\""));
    assert!(has(&p, "websocket.hearbeat", 5, "unknown key"), "{p:?}");
}

#[test]
fn fault_and_retry_keys_parse_into_typed_settings() {
    use pushbench::scenario::{Outage, OutageMode, Stall, Throttle, WsTarget};
    let src = r#"
[workload]
events_per_second = 100
duration = "2s"
[webhook]
retry = { schedule = ["0s", "5s", "5m", "30m", "2h"], time_scale = 0.001 }
[webhook.receiver]
outage = [{ at = "1s", for = "500ms" }, { at = "3s", for = "1s", mode = "drop" }, { at = "5s", for = "1s", mode = "503", retry_after = "2s" }]
throttle = { rate = 0.1, retry_after = "1s" }
gone = { subscribers = 0.01 }
[websocket]
[websocket.server]
stall = { at = "1s", for = "2s" }
"#;
    let s = parse(src, "t", &env).unwrap();
    let w = s.webhook.unwrap();
    let r = &w.retry;
    assert_eq!(r.attempts, 5, "one attempt per schedule entry");
    assert_eq!(
        r.schedule_ns,
        vec![5, 300, 1800, 7200]
            .into_iter()
            .map(|s: u64| s * 1_000_000_000)
            .collect::<Vec<_>>(),
        "the waits before each retry"
    );
    assert_eq!(
        (r.time_scale, r.jitter, r.max_ns),
        (0.001, Jitter::None, u64::MAX)
    );
    let WebhookTarget::Builtin(rc) = w.target else {
        panic!("builtin")
    };
    let s1 = 1_000_000_000;
    assert_eq!(
        rc.outages,
        vec![
            Outage {
                at_ns: s1,
                for_ns: s1 / 2,
                mode: OutageMode::Unavailable {
                    retry_after_s: None
                }
            },
            Outage {
                at_ns: 3 * s1,
                for_ns: s1,
                mode: OutageMode::Drop
            },
            Outage {
                at_ns: 5 * s1,
                for_ns: s1,
                mode: OutageMode::Unavailable {
                    retry_after_s: Some(2)
                }
            },
        ]
    );
    assert_eq!(
        rc.throttle,
        Some(Throttle {
            rate: 0.1,
            retry_after_s: 1
        })
    );
    assert_eq!(rc.gone_fraction, 0.01);
    let WsTarget::Builtin(server) = s.websocket.unwrap().target else {
        panic!("builtin")
    };
    assert_eq!(
        server.stall,
        Some(Stall {
            at_ns: s1,
            for_ns: 2 * s1
        })
    );
    // A single window is a table too.
    let one = parse(
        "[workload]\nevents_per_second = 1\nduration = \"1s\"\n[webhook.receiver]\noutage = { at = \"1s\", for = \"1s\", mode = \"drop\" }\n",
        "t",
        &env,
    )
    .unwrap();
    let WebhookTarget::Builtin(rc) = one.webhook.unwrap().target else {
        panic!("builtin")
    };
    assert_eq!(rc.outages.len(), 1);
}

#[test]
fn fault_and_retry_mistakes_are_named_with_lines() {
    let p = problems(
        r#"[workload]
events_per_second = 100
duration = "2s"
[webhook]
retry = { schedule = ["5s", "5m"], attempts = 3, time_scale = 0 }
[webhook.receiver]
outage = { at = "1s", mode = "down" }
throttle = { rate = 1.5, retry_after = "500ms" }
gone = { endpoints = 0.1 }
"#,
    );
    assert!(
        has(&p, "webhook.retry.schedule", 5, "start with \"0s\""),
        "{p:#?}"
    );
    assert!(
        has(&p, "webhook.retry.attempts", 5, "not with `schedule`"),
        "{p:#?}"
    );
    assert!(
        has(&p, "webhook.retry.time_scale", 5, "greater than 0"),
        "{p:#?}"
    );
    assert!(
        has(&p, "webhook.receiver.outage", 7, "needs both"),
        "{p:#?}"
    );
    assert!(
        has(&p, "webhook.receiver.outage.mode", 7, "\"503\", \"drop\""),
        "{p:#?}"
    );
    assert!(
        has(&p, "webhook.receiver.throttle.rate", 8, "between 0 and 1"),
        "{p:#?}"
    );
    assert!(
        has(
            &p,
            "webhook.receiver.throttle.retry_after",
            8,
            "whole seconds"
        ),
        "{p:#?}"
    );
    assert!(
        has(&p, "webhook.receiver.gone.endpoints", 9, "unknown key"),
        "{p:#?}"
    );
    assert!(
        has(&p, "webhook.receiver.gone.subscribers", 9, "missing"),
        "{p:#?}"
    );
}

#[test]
fn every_shipped_scenario_file_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = scenario::load(&path) {
                panic!("{e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "quick.toml and faults.toml at least");
}
