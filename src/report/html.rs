//! `report.html`: one self-contained page (charts inline as SVG, no fetches) with the verdict,
//! the comparison table, every chart, the scenario and the host.

use std::fmt::Write;

use super::charts::Rendered;
use super::cost::costs;
use super::load::RunData;
use super::table::{fmt_mib, fmt_us, grid};
use crate::model_kind::ModelKind;
use crate::record::results::{ModelSummary, Summary};

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn model(s: &Summary, name: ModelKind) -> Option<&ModelSummary> {
    s.models.iter().find(|m| m.model == name)
}

/// How many times larger `a` is than `b`, in words ("1.8x"), or `None` when within 10%.
/// A model as the verdict names it.
fn label(m: ModelKind) -> &'static str {
    match m {
        ModelKind::Webhook => "Webhooks",
        ModelKind::WebSocket => "WebSocket push",
        ModelKind::Sse => "Server-sent events",
        ModelKind::LongPoll => "Long polling",
    }
}

fn ratio(a: f64, b: f64) -> Option<String> {
    if a <= 0.0 || b <= 0.0 {
        return None;
    }
    let r = a.max(b) / a.min(b);
    (r >= 1.1).then(|| format!("{r:.1}x"))
}

fn cpu_per_million(run: &RunData, m: ModelKind) -> Option<f64> {
    let [(g, t, missing), _, _] = costs(run, m);
    missing.is_none().then_some(g + t)
}

/// The plain-language verdict of one run, drawn from its numbers only.
pub fn verdict(run: &RunData) -> Vec<String> {
    let s = &run.summary;
    let mut out = Vec::new();
    if s.interrupted {
        out.push(
            "The run was interrupted (Ctrl-C): the figures cover only the part that ran.".into(),
        );
    }
    for m in &s.models {
        if let Some(line) = m.saturation.headline(m.model) {
            out.push(format!("{line}."));
        }
    }
    let wh = model(s, ModelKind::Webhook);
    let ws = model(s, ModelKind::WebSocket);
    let timed: Vec<&ModelSummary> = s.models.iter().filter(|m| m.latency_us.count > 0).collect();
    match (wh, ws) {
        // Two models side by side; more are ranked below.
        (Some(wh), Some(ws))
            if wh.latency_us.count > 0 && ws.latency_us.count > 0 && timed.len() == 2 =>
        {
            let (a, b) = (wh.latency_us.p99 as f64, ws.latency_us.p99 as f64);
            out.push(match ratio(a, b) {
                Some(r) => format!(
                    "{} delivered the 99th percentile faster: {} against {} for {} ({r} faster at p99; p50 {} vs {}).",
                    if a < b { "Webhooks" } else { "WebSocket push" },
                    fmt_us(a.min(b) as u64),
                    fmt_us(a.max(b) as u64),
                    if a < b { "WebSocket push" } else { "webhooks" },
                    fmt_us(wh.latency_us.p50),
                    fmt_us(ws.latency_us.p50),
                ),
                None => format!(
                    "Both models delivered the 99th percentile within 10% of each other: webhooks {}, WebSocket push {} (p50 {} vs {}).",
                    fmt_us(wh.latency_us.p99),
                    fmt_us(ws.latency_us.p99),
                    fmt_us(wh.latency_us.p50),
                    fmt_us(ws.latency_us.p50),
                ),
            });
            if let (Some(c_wh), Some(c_ws)) = (
                cpu_per_million(run, ModelKind::Webhook),
                cpu_per_million(run, ModelKind::WebSocket),
            ) {
                let cheaper = if c_wh < c_ws {
                    "Webhooks"
                } else {
                    "WebSocket push"
                };
                out.push(match ratio(c_wh, c_ws) {
                    Some(r) => format!(
                        "{cheaper} used {r} less CPU per event: {c_wh:.1} CPU-seconds per million events for webhooks vs {c_ws:.1} for WebSocket push (generator and target together)."
                    ),
                    None => format!(
                        "CPU per event was about the same: {c_wh:.1} vs {c_ws:.1} CPU-seconds per million events (webhooks vs WebSocket, generator and target together)."
                    ),
                });
            }
        }
        _ => {}
    }
    // What holding a connection (stream, poll) per subscriber cost, model by model.
    let mut held = Vec::new();
    for m in &s.models {
        let Some(w) = m.fleet().filter(|_| m.connections.peak > 0) else {
            continue;
        };
        let what = match m.model {
            ModelKind::WebSocket => "WebSocket connections",
            ModelKind::Sse => "server-sent event streams",
            ModelKind::LongPoll => "long-polling subscribers",
            ModelKind::Webhook => continue,
        };
        let per_conn =
            w.memory_per_connection_bytes.generator + w.memory_per_connection_bytes.target;
        held.push(format!(
            "{} {what} cost about {} of memory ({:.1} KiB each: {:.1} KiB in the clients, {:.1} KiB in the server)",
            m.connections.peak,
            fmt_mib((per_conn * m.connections.peak as f64) as u64),
            per_conn / 1024.0,
            w.memory_per_connection_bytes.generator / 1024.0,
            w.memory_per_connection_bytes.target / 1024.0,
        ));
    }
    if !held.is_empty() {
        let webhooks = match wh.filter(|m| m.connections.peak > 0) {
            Some(m) => format!(
                "; webhooks hold no connection per subscriber (they used {} pooled connections)",
                m.connections.peak
            ),
            None => String::new(),
        };
        out.push(format!("Holding {}{webhooks}.", held.join("; ")));
    }
    // More than two models: each ranked by p99 and by CPU per event.
    if timed.len() > 2 {
        let mut by_p99 = timed.clone();
        by_p99.sort_by_key(|m| m.latency_us.p99);
        let list: Vec<String> = by_p99
            .iter()
            .map(|m| {
                format!(
                    "{} {} (p50 {})",
                    label(m.model),
                    fmt_us(m.latency_us.p99),
                    fmt_us(m.latency_us.p50)
                )
            })
            .collect();
        out.push(format!(
            "Ranked by the 99th percentile of delivery latency: {}.",
            list.join(", ")
        ));
        let mut by_cpu: Vec<(ModelKind, f64)> = timed
            .iter()
            .filter_map(|m| Some((m.model, cpu_per_million(run, m.model)?)))
            .collect();
        if by_cpu.len() > 2 {
            by_cpu.sort_by(|a, b| a.1.total_cmp(&b.1));
            let list: Vec<String> = by_cpu
                .iter()
                .map(|(m, c)| format!("{} {c:.1}", label(*m)))
                .collect();
            out.push(format!(
                "Ranked by CPU-seconds per million events (generator and target together): {}.",
                list.join(", ")
            ));
        }
    }
    for m in &s.models {
        // `dropped` and `unfinished` are parts of `failed`.
        let lost = m.failed;
        let name = label(m.model);
        let extra = match m.fleet() {
            Some(w) => {
                let mut text = format!(
                    ", {} missed in sequence gaps, {} reconnects",
                    w.gaps, m.connections.reconnects
                );
                if w.replayed > 0 {
                    text += &format!(", {} replayed after a resume", w.replayed);
                }
                if let Some(p) = w.polling.as_ref().filter(|_| m.delivered > 0) {
                    text += &format!(
                        ", {:.2} polls per event ({:.1} events per answer, {} answered empty)",
                        p.polls_per_event, p.events_per_answer, p.empty_answers
                    );
                }
                text
            }
            None => format!(", {} retries, {} duplicates", m.retries, m.duplicates),
        };
        let tls = m.tls.as_ref().map_or(String::new(), |t| {
            format!(
                " Over {}: {} full and {} resumed handshakes, p50 {} each after the TCP connect.",
                t.version,
                t.full,
                t.resumed,
                crate::units::fmt_us(m.tls_handshake_us.p50)
            )
        });
        out.push(format!(
            "{name}: {} of {} events delivered, {lost} not delivered{extra}; {:.0} bytes on the wire per event.{tls}",
            m.delivered, m.events, m.bytes_per_event
        ));
    }
    let failed: Vec<&str> = s
        .thresholds
        .iter()
        .filter(|t| !t.pass)
        .map(|t| t.expression.as_str())
        .collect();
    if !s.thresholds.is_empty() {
        out.push(if failed.is_empty() {
            format!("All {} thresholds held.", s.thresholds.len())
        } else {
            format!("Thresholds failed: {}.", failed.join("; "))
        });
    }
    let net = s.models.iter().find_map(|m| m.network.as_ref());
    out.push(match net {
        Some(n) => format!(
            "Generator and targets shared one host ({} cores), the targets behind an emulated network ({}: kernel TCP at both ends, the link's own delay p99 {}): compare the models with each other, and check absolute figures against your own deployment.",
            s.host.cores,
            n.settings,
            crate::units::fmt_us(
                s.models
                    .iter()
                    .filter_map(|m| m.network.as_ref())
                    .map(|n| n.link_late_us.p99)
                    .max()
                    .unwrap_or(0)
            )
        ),
        None => format!(
            "Generator and targets shared one host ({} cores), on loopback: compare the models with each other, and check absolute figures against your own deployment (a [network] section puts its round trips into the run).",
            s.host.cores
        ),
    });
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1240px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:1em 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}\
td:first-child,th:first-child{text-align:left}td.best{font-weight:bold;background:#e8f5e9}\
figure{margin:1.5em 0}svg{max-width:100%;height:auto}figcaption{color:#666;font-size:.9em}\
pre{background:#f6f6f6;padding:1em;overflow:auto}.fail{color:#b00020;font-weight:bold}.pass{color:#1b5e20}";

/// The page, given the loaded runs and the charts drawn from them.
pub fn page(runs: &[RunData], charts: &[Rendered]) -> String {
    let mut h = String::new();
    let title = runs
        .iter()
        .map(|r| r.label.as_str())
        .collect::<Vec<_>>()
        .join(" vs ");
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>pushbench: {t}</title><style>{STYLE}</style></head><body>\n\
         <h1>pushbench: {t}</h1>\n",
        t = escape(&title)
    );
    h.push_str("<section id=\"verdict\"><h2>Verdict</h2>\n");
    for run in runs {
        if runs.len() > 1 {
            let _ = write!(h, "<h3>{}</h3>", escape(&run.label));
        }
        h.push_str("<ul>");
        for line in verdict(run) {
            let _ = write!(h, "<li>{}</li>", escape(&line));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n<section id=\"comparison\"><h2>Comparison</h2>\n");
    for run in runs {
        comparison_table(&mut h, run, runs.len() > 1);
    }
    h.push_str("</section>\n<section id=\"charts\"><h2>Charts</h2>\n");
    for c in charts {
        let stem = c.chart.stem();
        // Inline, so the page needs nothing beside it; the files are linked for reuse.
        let svg = c.svg.trim_start_matches(|ch| ch != '<');
        let svg = svg
            .strip_prefix("<?xml")
            .and_then(|rest| rest.split_once("?>").map(|(_, s)| s))
            .unwrap_or(svg);
        let _ = writeln!(
            h,
            "<figure id=\"chart-{stem}\">{svg}<figcaption>{} &middot; <a href=\"{stem}.png\">{stem}.png</a> &middot; <a href=\"{stem}.svg\">{stem}.svg</a></figcaption></figure>",
            escape(c.chart.title())
        );
    }
    h.push_str("</section>\n<section id=\"scenario\"><h2>Scenario</h2>\n");
    for run in runs {
        let _ = writeln!(
            h,
            "<h3>{}</h3><p>results: <code>{}</code></p><pre>{}</pre>",
            escape(&run.label),
            escape(&run.dir.display().to_string()),
            escape(
                run.scenario_text
                    .as_deref()
                    .unwrap_or("(this results directory has no scenario.toml)")
            )
        );
    }
    h.push_str("</section>\n<section id=\"host\"><h2>Host</h2>\n<table>");
    h.push_str("<tr><th>run</th><th>started</th><th>host</th><th>cores</th><th>memory</th><th>kernel</th><th>pushbench</th></tr>");
    for run in runs {
        let s = &run.summary;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&run.label),
            escape(&s.started_at),
            escape(&s.host.hostname),
            s.host.cores,
            fmt_mib(s.host.memory_bytes),
            escape(&s.host.kernel),
            escape(&s.version)
        );
    }
    h.push_str("</table></section>\n</body></html>\n");
    h
}

fn comparison_table(h: &mut String, run: &RunData, titled: bool) {
    let s = &run.summary;
    let g = grid(s);
    if titled {
        let _ = write!(h, "<h3>{}</h3>", escape(&run.label));
    }
    let _ = write!(
        h,
        "<p>{} s measured after {} s warm-up{}. Latency is measured from each event's intended time; bold = best of the models on that row.</p>",
        s.duration_s,
        s.warmup_s,
        if s.interrupted { ", interrupted" } else { "" }
    );
    h.push_str("<table class=\"comparison\"><tr><th></th>");
    for m in &g.models {
        let _ = write!(h, "<th>{}</th>", escape(m.name()));
    }
    h.push_str("</tr>");
    for (label, cells) in &g.rows {
        let _ = write!(h, "<tr><td>{}</td>", escape(label));
        for c in cells {
            let _ = write!(
                h,
                "<td{}>{}</td>",
                if c.best { " class=\"best\"" } else { "" },
                escape(&c.text)
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>\n");
    if !s.thresholds.is_empty() {
        h.push_str("<table class=\"thresholds\"><tr><th>threshold</th><th>observed</th><th>verdict</th></tr>");
        for t in &s.thresholds {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
                escape(&t.expression),
                t.observed.map_or("n/a".into(), |v| v.to_string()),
                if t.pass { "pass" } else { "fail" },
                if t.pass { "pass" } else { "FAIL" }
            );
        }
        h.push_str("</table>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::hist::Percentiles;
    use crate::record::results::WsSummary;

    fn run_with(wh_p99: u64, ws_p99: u64) -> RunData {
        let lat = |p99| Percentiles {
            count: 1000,
            p50: 100,
            p99,
            ..Percentiles::default()
        };
        let mut wh = ModelSummary {
            model: ModelKind::Webhook,
            events: 1000,
            delivered: 1000,
            latency_us: lat(wh_p99),
            ..ModelSummary::default()
        };
        wh.resources.generator.cpu_s = 1.0;
        wh.connections.peak = 64;
        let mut ws = ModelSummary {
            model: ModelKind::WebSocket,
            events: 1000,
            delivered: 990,
            failed: 10,
            latency_us: lat(ws_p99),
            websocket: Some(WsSummary::default()),
            ..ModelSummary::default()
        };
        ws.resources.generator.cpu_s = 3.0;
        ws.connections.peak = 10_000;
        let w = ws.websocket.as_mut().unwrap();
        w.memory_per_connection_bytes.generator = 1024.0;
        w.memory_per_connection_bytes.target = 2048.0;
        RunData {
            dir: "x".into(),
            label: "t".into(),
            summary: Summary {
                models: vec![wh, ws],
                ..Summary::default()
            },
            timeseries: Vec::new(),
            hists: Default::default(),
            scenario_text: None,
        }
    }

    #[test]
    fn three_models_are_ranked_by_p99_and_by_cpu() {
        let mut run = run_with(2_000, 5_000);
        let mut sse = run.summary.models[1].clone();
        sse.model = ModelKind::Sse;
        sse.latency_us.p99 = 1_000;
        sse.resources.generator.cpu_s = 2.0;
        run.summary.models.push(sse);
        let v = verdict(&run).join("\n");
        assert!(
            v.contains("Ranked by the 99th percentile of delivery latency: Server-sent events 1.00ms (p50 100us), Webhooks 2.00ms (p50 100us), WebSocket push 5.00ms"),
            "{v}"
        );
        assert!(
            !v.contains("delivered the 99th percentile faster"),
            "no pairwise verdict: {v}"
        );
        assert!(
            v.contains("Server-sent events: 990 of 1000 events delivered"),
            "{v}"
        );
    }

    #[test]
    fn verdict_names_the_faster_model_and_the_costs() {
        let v = verdict(&run_with(2_000, 5_000)).join("\n");
        assert!(v.contains("Webhooks delivered the 99th percentile faster: 2.00ms against 5.00ms for WebSocket push (2.5x"), "{v}");
        assert!(v.contains("Webhooks used 3.0x less CPU per event"), "{v}");
        assert!(
            v.contains(
                "Holding 10000 WebSocket connections cost about 29.3 MiB of memory (3.0 KiB each"
            ),
            "{v}"
        );
        assert!(
            v.contains("WebSocket push: 990 of 1000 events delivered, 10 not delivered"),
            "{v}"
        );

        let v = verdict(&run_with(5_000, 2_000)).join("\n");
        assert!(
            v.contains("WebSocket push delivered the 99th percentile faster"),
            "{v}"
        );
        let v = verdict(&run_with(2_000, 2_100)).join("\n");
        assert!(v.contains("within 10% of each other"), "{v}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
