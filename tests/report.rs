//! Reports rendered from a saved results directory (`results/example`, a real run of the default
//! scenario committed with the source): every chart as valid SVG and a PNG of the right size, the
//! HTML page, overlays of several runs, and the `report` command.

mod common;

use std::path::Path;
use std::process::Command;

use pushbench::record::results::Summary;
use pushbench::report::charts::Chart;
use pushbench::report::{self, load};

use common::{copy_results, example_results as example};

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is a PNG",
        path.display()
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

fn svg_texts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not valid XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(|t| t.trim().to_string()))
        .collect()
}

#[test]
fn every_chart_renders_as_valid_svg_and_png_of_its_size() {
    let out = tempfile::tempdir().unwrap();
    let page = report::render(&[example()], out.path()).unwrap();
    assert!(page.ends_with("report.html"));
    for chart in Chart::ALL {
        let svg = out.path().join(format!("{}.svg", chart.stem()));
        let texts = svg_texts(&svg);
        assert!(
            texts.iter().any(|t| t == chart.title()),
            "{} carries its title",
            chart.stem()
        );
        let png = out.path().join(format!("{}.png", chart.stem()));
        assert_eq!(png_size(&png), chart.size(), "{}", chart.stem());
        // A blank or text-less picture compresses to a few kilobytes.
        assert!(
            std::fs::metadata(&png).unwrap().len() > 20_000,
            "{} has content",
            chart.stem()
        );
    }
    // Both models appear in the legends, and axes say their units.
    let texts = svg_texts(&out.path().join("latency_percentiles.svg"));
    for needle in [
        "webhook",
        "websocket (uncorrected)",
        "99%",
        "99.9%",
        "50%",
        "percentile",
    ] {
        assert!(
            texts.iter().any(|t| t == needle),
            "missing {needle:?} in {texts:?}"
        );
    }
    let texts = svg_texts(&out.path().join("cost.svg"));
    assert!(texts
        .iter()
        .any(|t| t.contains("CPU-seconds per million events")));
    assert!(texts.iter().any(|t| t.contains("MiB per 10,000")));
}

#[test]
fn the_page_holds_the_table_every_chart_and_the_scenario() {
    let out = tempfile::tempdir().unwrap();
    let page = report::render(&[example()], out.path()).unwrap();
    let html = std::fs::read_to_string(page).unwrap();
    assert!(html.contains("<table class=\"comparison\">"));
    let summary: Summary =
        serde_json::from_slice(&std::fs::read(example().join("summary.json")).unwrap()).unwrap();
    // The same figures as the terminal table: its p99 cells appear verbatim.
    let terminal = pushbench::report::table::render(&summary);
    for m in &summary.models {
        let cell = pushbench::report::table::fmt_us(m.latency_us.p99);
        assert!(
            terminal.contains(&cell) && html.contains(&cell),
            "p99 {cell}"
        );
    }
    for chart in Chart::ALL {
        assert!(html.contains(&format!("id=\"chart-{}\"", chart.stem())));
        assert!(html.contains(&format!("href=\"{}.png\"", chart.stem())));
    }
    // Self-contained: charts inline, nothing fetched.
    assert_eq!(html.matches("<svg").count(), Chart::ALL.len());
    // Only the SVG namespace names a URL, and a namespace is never fetched.
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http://") && !without_ns.contains("https://"));
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("<img"));
    assert!(
        html.contains("events_per_second"),
        "the scenario text is shown"
    );
    assert!(
        html.contains("Ranked by the 99th percentile of delivery latency: "),
        "a verdict on p99, every model ranked"
    );
    for name in [
        "Webhooks",
        "WebSocket push",
        "Server-sent events",
        "Long polling",
    ] {
        assert!(html.contains(&format!("{name}: 20000 of 20000")), "{name}");
    }
    // The CSVs are re-rendered from the histograms and agree with the summary.
    let csv = std::fs::read_to_string(out.path().join("percentiles.csv")).unwrap();
    let max_row = csv
        .lines()
        .rfind(|l| l.starts_with("webhook,latency,"))
        .unwrap()
        .to_string();
    let webhook = summary
        .models
        .iter()
        .find(|m| m.model.name() == "webhook")
        .unwrap();
    assert!(
        max_row.contains(&format!(",{},", webhook.latency_us.max)),
        "{max_row}"
    );
}

#[test]
fn two_runs_overlay_with_both_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    copy_results(&example(), &a);
    copy_results(&example(), &b);
    // The second run: another scenario name, as a keep-alive vs fresh comparison would have.
    let path = b.join("summary.json");
    let mut summary: Summary = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    summary.scenario = "fresh-connections".into();
    std::fs::write(&path, serde_json::to_vec(&summary).unwrap()).unwrap();

    let out = tmp.path().join("overlay");
    let page = report::render(&[a.clone(), b.clone()], &out).unwrap();
    let html = std::fs::read_to_string(page).unwrap();
    let labels: Vec<String> = [&a, &b]
        .iter()
        .map(|d| load::load(d).unwrap().label)
        .collect();
    assert!(labels[1].starts_with("fresh-connections "));
    for label in &labels {
        assert!(html.contains(label.as_str()), "page names {label}");
        let texts = svg_texts(&out.join("latency_percentiles.svg"));
        assert!(
            texts.iter().any(|t| t == &format!("webhook · {label}")),
            "legend names webhook of {label}: {texts:?}"
        );
    }
    assert_eq!(html.matches("<table class=\"comparison\">").count(), 2);
    let csv = std::fs::read_to_string(out.join("summary.csv")).unwrap();
    assert!(csv.starts_with("run,model,"));
    assert_eq!(csv.lines().count(), 9, "header + four models of two runs");
}

#[test]
fn report_command_rerenders_into_out_and_rejects_a_missing_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("re");
    let run = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args([
            "report",
            example().to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert_eq!(
        stdout.lines().last().unwrap(),
        format!("results: {}", out.display())
    );
    for name in [
        "report.html",
        "summary.json",
        "timeseries.csv",
        "webhook.hlog",
        "cost.png",
    ] {
        assert!(out.join(name).exists(), "{name} written");
    }

    let missing = tmp.path().join("no-such-run");
    let run = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["report", missing.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(
        stderr.contains("no-such-run") && stderr.contains("summary.json"),
        "{stderr}"
    );
}
