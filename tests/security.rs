//! What the harness exposes: secrets never reach output or results, and built-in servers stay on
//! loopback unless told otherwise (and then warn).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use clap::Parser;
use pushbench::cli::{Cli, Command as Sub, ServeTarget};

const SECRET: &str = "whsec_S3cr3tVa1ueThatMustNeverLeakQQ==";
/// The part of the secret that identifies it, in any encoding a leak might use.
const NEEDLES: [&str; 2] = ["S3cr3tVa1ueThatMustNeverLeak", "whsec_S3cr3t"];

fn pushbench(args: &[&str], dir: &Path, secret: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(args)
        .current_dir(dir)
        .env("PB_HOSTILE_SECRET", secret)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("binary runs")
}

fn assert_clean(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for needle in NEEDLES {
        assert!(!text.contains(needle), "{what} shows the secret:\n{text}");
    }
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn a_secret_from_the_environment_appears_in_no_output_and_no_result_file() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("secret.toml");
    std::fs::write(
        &scenario,
        "name = \"secret-check\"\n[workload]\nevents_per_second = 200\nduration = \"1s\"\n\
         subscribers = 10\n[webhook]\nsignature = \"standard\"\nsecret = \"env:PB_HOSTILE_SECRET\"\n\
         [thresholds]\n\"webhook.failed\" = \"== 0\"\n",
    )
    .unwrap();
    let out_dir = dir.path().join("results");
    let out = pushbench(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--progress",
            "plain",
        ],
        dir.path(),
        SECRET,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean("stdout", &out.stdout);
    assert_clean("stderr", &out.stderr);

    // The secret was used: the receiver verified every delivery with it.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let m = &summary["models"][0];
    assert_eq!(m["delivered"], 200, "{m}");
    assert_eq!(m["receiver"]["bad_signature"], 0, "{m}");

    let mut files = Vec::new();
    files_under(&out_dir, &mut files);
    assert!(files.len() >= 4, "{files:?}");
    for f in files {
        assert_clean(&f.display().to_string(), &std::fs::read(&f).unwrap());
    }
}

#[test]
fn a_malformed_secret_is_refused_without_being_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("bad-secret.toml");
    std::fs::write(
        &scenario,
        "[workload]\nevents_per_second = 10\nduration = \"1s\"\n[webhook]\nsecret = \"env:PB_HOSTILE_SECRET\"\n",
    )
    .unwrap();
    let not_base64 = "whsec_S3cr3tVa1ueThatMustNeverLeak!!not base64";
    for cmd in ["validate", "run"] {
        let out = pushbench(&[cmd, scenario.to_str().unwrap()], dir.path(), not_base64);
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("line 5: `webhook.secret`"), "{cmd}: {err}");
        assert_clean(cmd, &out.stderr);
        assert_clean(cmd, &out.stdout);
    }
}

#[test]
fn built_in_servers_listen_on_loopback_by_default() {
    for target in ["webhook", "ws", "sink"] {
        let cli = Cli::try_parse_from(["pushbench", "serve", target]).unwrap();
        let listen = match cli.command {
            Sub::Serve {
                target: ServeTarget::Webhook(a),
            } => a.listen,
            Sub::Serve {
                target: ServeTarget::Ws { listen, .. } | ServeTarget::Sink { listen, .. },
            } => listen,
            other => panic!("{other:?}"),
        };
        let addr: std::net::SocketAddr = listen;
        assert!(addr.ip().is_loopback(), "serve {target} defaults to {addr}");
    }
}

#[test]
fn a_loopback_server_starts_without_a_warning() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushbench"))
        .args(["serve", "sink", "--listen", "127.0.0.1:0", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    // SIGTERM, the way a user stops it, so it exits on its own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        line.starts_with("pushbench sink listening on http://127.0.0.1:"),
        "{line}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("warning"), "{err}");
}
