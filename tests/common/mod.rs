//! Helpers shared by the loopback integration tests.
#![allow(dead_code)]

use pushbench::record::results::ModelSummary;
use pushbench::run::{run, ProgressMode, RunOptions, RunReport};
use pushbench::scenario::{parse, Scenario};
use pushbench::servers::launch::TargetLaunch;

/// Runs this build's binary with `args` in `dir`, as a user at a terminal would.
pub fn pushbench(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the binary runs")
}

/// Parses scenario text; `env:` secrets resolve from the test's own table.
pub fn scenario(src: &str) -> Scenario {
    parse(src, "test", &|name| match name {
        "TEST_SECRET" => Some("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into()),
        _ => None,
    })
    .unwrap_or_else(|p| panic!("bad test scenario: {p:#?}"))
}

/// The webhook scenario `src` once per connection mode, kept alive and fresh per attempt:
/// the epoll loop's two ways of holding a connection (src/webhook/plain.rs).
#[allow(dead_code)]
pub fn per_connection_mode(src: &str) -> [(&'static str, Scenario); 2] {
    assert!(
        src.contains("[webhook]\n"),
        "a [webhook] table to add the mode to"
    );
    ["keepalive", "fresh"].map(|mode| {
        (
            mode,
            scenario(&src.replacen(
                "[webhook]\n",
                &format!("[webhook]\nconnection = \"{mode}\"\n"),
                1,
            )),
        )
    })
}

/// Runs with in-process targets into a temporary directory.
pub async fn run_in_process(s: &Scenario) -> (RunReport, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        out: Some(dir.path().join("out")),
        results_root: dir.path().to_path_buf(),
        launch: TargetLaunch::InProcess,
        progress: ProgressMode::Off,
        interval_ns: 1_000_000_000,
    };
    let report = run(s, &opts).await.expect("run starts");
    (report, dir)
}

/// The webhook entry of a report.
pub fn webhook(report: &RunReport) -> &ModelSummary {
    report
        .summary
        .models
        .iter()
        .find(|m| m.model.name() == "webhook")
        .expect("webhook model ran")
}

/// The entry of model `name` in a report (which must have no run error).
pub fn model<'a>(report: &'a RunReport, name: &str) -> &'a ModelSummary {
    assert!(report.error.is_none(), "{:?}", report.error);
    report
        .summary
        .models
        .iter()
        .find(|m| m.model.name() == name)
        .unwrap_or_else(|| panic!("the {name} model ran"))
}

/// The WebSocket entry of a report (which must have no run error).
pub fn websocket(report: &RunReport) -> &ModelSummary {
    model(report, "websocket")
}

/// The example results committed with the source (a real run of the default scenario).
pub fn example_results() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/example")
}

/// Copies the source files of a results directory (not its rendered outputs).
pub fn copy_results(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in [
        "summary.json",
        "timeseries.csv",
        "webhook.hlog",
        "websocket.hlog",
        "scenario.toml",
    ] {
        std::fs::copy(from.join(name), to.join(name)).unwrap();
    }
}

/// What `pushbench report OUT --out AGAIN` made of a capacity or sweep directory `out` whose
/// files are `<stem>.json` and `<stem>.csv`: the new directory, the JSON before and after, and
/// what the command printed. Asserts it succeeded and that the CSV (its figures rounded when
/// written) came out byte for byte; the JSON's floats read back to within their last digit, so
/// callers compare the fields that matter.
pub struct Rerendered {
    pub dir: std::path::PathBuf,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
    pub stdout: String,
}

pub fn rerender(out: &std::path::Path, stem: &str) -> Rerendered {
    let again = out.with_file_name("again");
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args([
            "report",
            out.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
        ])
        .output()
        .expect("binary runs");
    assert_eq!(shown.status.code(), Some(0), "{shown:?}");
    let read = |d: &std::path::Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let csv = format!("{stem}.csv");
    assert!(
        read(&again, &csv) == read(out, &csv),
        "{csv} comes out the same"
    );
    let json = |d: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&read(d, &format!("{stem}.json"))).unwrap()
    };
    Rerendered {
        before: json(out),
        after: json(&again),
        dir: again,
        stdout: String::from_utf8_lossy(&shown.stdout).into_owned(),
    }
}

/// The binary under test started in `dir` with its stdout and stderr piped.
pub fn spawn_pushbench(args: &[&str], dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("binary starts")
}

/// Reads `child`'s stderr up to the first line `wanted` accepts and returns that line and the
/// reader (to hand to [`finish`]); panics, saying `what`, if the stream ends first.
pub fn stderr_until(
    child: &mut std::process::Child,
    wanted: impl Fn(&str) -> bool,
    what: &str,
) -> (String, std::io::BufReader<std::process::ChildStderr>) {
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr piped"));
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(n > 0, "the command ended before {what}");
        if wanted(&line) {
            return (line, stderr);
        }
    }
}

/// Waits for `child` and returns its output with the rest of its stderr (read alongside, so a
/// full pipe never blocks it).
pub fn finish(
    child: std::process::Child,
    mut stderr: std::io::BufReader<std::process::ChildStderr>,
) -> (std::process::Output, String) {
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let out = child.wait_with_output().unwrap();
    (out, rest.join().unwrap())
}

/// A harness -> push server control record (see `pushbench::websocket::proto`): intended and
/// sent times are 1000 + seq and 2000 + seq.
pub fn control(tag: u8, subscriber: u32, seq: u64, len: u32) -> Vec<u8> {
    let mut out = Vec::new();
    pushbench::websocket::proto::Control {
        tag,
        subscriber,
        seq,
        intended_us: 1_000 + seq,
        sent_us: 2_000 + seq,
        len,
    }
    .write(&mut out);
    out
}

/// Asks a push server process for its counters over its control connection and reads them
/// (skipping the hold/release records before the answer).
pub fn server_stats(ctl: &mut std::net::TcpStream) -> serde_json::Value {
    use std::io::{Read, Write};
    ctl.write_all(&control(pushbench::websocket::proto::tag::STATS, 0, 0, 0))
        .unwrap();
    let mut head = [0u8; 5];
    ctl.read_exact(&mut head).unwrap();
    while head[0] != pushbench::websocket::proto::tag::STATS {
        ctl.read_exact(&mut head).unwrap();
    }
    let mut json = vec![0u8; u32::from_le_bytes(head[1..5].try_into().unwrap()) as usize];
    ctl.read_exact(&mut json).unwrap();
    serde_json::from_slice(&json).unwrap()
}
