//! Malformed scenario files (tests/corpus/) through the real binary: `validate` and `run` each
//! exit 2 with a problem that names the key and line, and never panic. Inputs the fuzzer
//! (fuzz/, target scenario_parse) found are added here.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Each corpus file with what its first problem must say (key and line where there is one).
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "zero-max-wait.toml",
        &["line 5: `webhook.max_wait`", "must be at least 1ms"],
    ),
    (
        "absurd-duration.toml",
        &["line 3: `workload.duration`", "longer than a year"],
    ),
    (
        "absurd-payload.toml",
        &["line 4: `workload.payload_bytes`", "at most 16777216"],
    ),
    (
        "absurd-subscribers.toml",
        &["line 4: `workload.subscribers`", "at most 10000000"],
    ),
    (
        "array-of-tables.toml",
        &["line 1: `workload`: expected a table, found an array of tables"],
    ),
    (
        "bad-port.toml",
        &["line 5: `webhook.url`: bad port \"99999\""],
    ),
    (
        "binary-garbage.toml",
        &["line 1: the file is not UTF-8 text (invalid byte at offset 0)"],
    ),
    (
        "deep-arrays.toml",
        &["line 4: `workload.shape`: not valid TOML"],
    ),
    (
        "deep-inline-tables.toml",
        &["line 4: `workload.shape`: not valid TOML"],
    ),
    (
        "duplicate-key.toml",
        &["line 3: `workload.events_per_second`: not valid TOML: duplicate key"],
    ),
    (
        "duplicate-table.toml",
        &["line 5: `workload`: not valid TOML: duplicate key"],
    ),
    ("empty.toml", &["the file is empty"]),
    // Found by the fuzzer: toml_edit 0.23 panicked ("all items have spans") on both.
    ("fuzz-crash-4d1d13bf.toml", &["line 1: not valid TOML"]),
    (
        "fuzz-minimized-empty-dotted-key.toml",
        &["line 1: not valid TOML"],
    ),
    (
        "huge-float.toml",
        &[
            "line 2: `workload.events_per_second`: not valid TOML",
            "overflow",
        ],
    ),
    (
        "huge-integer.toml",
        &["line 4: `workload.subscribers`: not valid TOML", "overflow"],
    ),
    (
        "invalid-utf8-in-string.toml",
        &["line 5: `webhook.secret`: the file is not UTF-8"],
    ),
    (
        "long-key.toml",
        &["line 4: `workload.kkkkkkkk", "...`: unknown key"],
    ),
    (
        "nan-and-inf.toml",
        &[
            "line 2: `workload.events_per_second`: must be a finite number (got NaN)",
            "line 5: `websocket.connect_rate`: must be a finite number (got inf)",
        ],
    ),
    (
        "nan-ramp.toml",
        &["line 3: `workload.shape.ramp`: expected [from, to]"],
    ),
    (
        "negative-rate.toml",
        &["line 2: `workload.events_per_second`: must be greater than 0 (got -5)"],
    ),
    (
        "nul-in-string.toml",
        &["line 3: `workload.duration`: not valid TOML"],
    ),
    (
        "only-comments.toml",
        &["`workload`: missing [workload] table"],
    ),
    (
        "table-as-value.toml",
        &["line 1: `workload`: expected a table, found an integer"],
    ),
    (
        "unknown-keys.toml",
        &[
            "line 4: `workload.evnts_per_second`: unknown key",
            "line 6: `webhook.urll`: unknown key",
            "line 7: `extra`: unknown key",
        ],
    ),
    (
        "unterminated-string.toml",
        &["line 3: `workload.duration`: not valid TOML"],
    ),
    (
        "wrong-types.toml",
        &[
            "line 2: `workload.events_per_second`: expected a finite number, found a string",
            "line 3: `workload.subscribers`: expected an integer, found a float",
            "line 4: `workload.duration`: expected a duration string",
            "line 6: `webhook.pool`: expected an integer, found a boolean",
        ],
    ),
    (
        "zero-and-negative-integers.toml",
        &[
            "line 4: `workload.fanout`: must be at least 1 (got 0)",
            "line 6: `webhook.pool`: must be at least 1 (got -1)",
            "line 9: `webhook.retry.attempts`: must be at least 1 (got -3)",
        ],
    ),
    (
        "zero-rate.toml",
        &[
            "line 2: `workload.events_per_second`: must be greater than 0 (got 0)",
            "line 5: `websocket.connect_rate`: must be greater than 0 (got 0)",
        ],
    ),
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

#[test]
fn every_corpus_file_has_expectations() {
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "tests/corpus/ and EXPECTED list the same files"
    );
}

#[test]
fn malformed_files_exit_2_with_key_and_line_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    for (file, expected) in EXPECTED {
        let path = corpus().join(file);
        for cmd in ["validate", "run"] {
            let out = Command::new(env!("CARGO_BIN_EXE_pushbench"))
                .args([cmd, path.to_str().unwrap()])
                .current_dir(dir.path())
                // Unset, so a panic would print its "run with RUST_BACKTRACE=1" note.
                .env_remove("RUST_BACKTRACE")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} {file}: {err}");
            assert!(!err.contains("panicked"), "{cmd} {file}: {err}");
            assert!(!err.contains("RUST_BACKTRACE"), "{cmd} {file}: {err}");
            assert!(err.len() < 4000, "{cmd} {file}: a short message: {err}");
            for text in *expected {
                assert!(
                    err.contains(text),
                    "{cmd} {file}: expected {text:?} in\n{err}"
                );
            }
        }
    }
    assert!(
        !dir.path().join("results").exists(),
        "no run started for a malformed file"
    );
}

/// A bounded, repeatable stand-in for the fuzzer that runs with `cargo test`: corpus files and
/// valid scenarios, mutated with bytes and tokens that TOML and the validator treat specially.
#[test]
fn mutated_scenarios_are_refused_or_accepted_never_a_panic() {
    // The 100 kB files cost more to mutate than they teach.
    let mut seeds: Vec<Vec<u8>> = EXPECTED
        .iter()
        .map(|(f, _)| std::fs::read(corpus().join(f)).unwrap())
        .filter(|bytes| bytes.len() < 4096)
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    seeds.push(std::fs::read(root.join("scenarios/quick.toml")).unwrap());
    seeds.push(
        b"[workload]\nshape = { steps = [[500, \"1s\"], [0, \"2s\"]] }\nduration = \"3s\"\n\
          [webhook]\nurl = \"http://[::1]:9/h/{subscriber}\"\nsecret = \"env:FUZZ_SECRET\"\n\
          retry = { attempts = 3, initial = \"1ms\", max = \"1s\", jitter = \"equal\" }\n\
          [webhook.receiver]\nstall = { at = \"1s\", for = \"1s\" }\n\
          [websocket]\nmode = \"echo\"\nreconnect = { initial = \"1ms\" }\n\
          [thresholds]\n\"webhook.latency_us.p99\" = \"< 5\"\n"
            .to_vec(),
    );
    let tokens: &[&[u8]] = &[
        b"[",
        b"]",
        b"[[",
        b"{",
        b"}",
        b"=",
        b"\"",
        b"'",
        b"\n",
        b",",
        b".",
        b"#",
        b"1e400",
        b"-1",
        b"0",
        b"nan",
        b"-inf",
        b"99999999999999999999",
        b"\"9999999h\"",
        b"\"0s\"",
        b"\"1.5.5s\"",
        b"[workload]\n",
        b"[webhook]\n",
        b"[websocket]\n",
        b"[websocket.server]\n",
        b"shape = ",
        b"{ ramp = [",
        b"{ steps = [[",
        b"{ burst = 0, every = \"0s\" }",
        b"\xff",
        b"\xc3",
        b"\xe2\x82",
        b"env:",
        b"\"env:\"",
        b"\"builtin\"",
        b"\"http://:0\"",
        b"\"ws://[\"",
        b"code = \"abrupt\"",
        b"\"\\u0000\"",
        b"\"\"\"",
        b"\r\n",
    ];
    let env = |name: &str| (name == "FUZZ_SECRET").then(|| "whsec_AAAA".to_string());
    let mut rng = pushbench::schedule::SplitMix64::new(0x5eed);
    let mut pick = |n: usize| (rng.next_u64() % n.max(1) as u64) as usize;
    for i in 0..4000 {
        let mut input = seeds[pick(seeds.len())].clone();
        for _ in 0..1 + pick(4) {
            let at = pick(input.len() + 1);
            match pick(5) {
                0 if at < input.len() => input[at] ^= 1 << pick(8),
                1 => {
                    let t = tokens[pick(tokens.len())];
                    input.splice(at..at, t.iter().copied());
                }
                2 => {
                    let end = (at + pick(16)).min(input.len());
                    input.drain(at..end);
                }
                3 => {
                    let end = (at + pick(64)).min(input.len());
                    let copy = input[at..end].to_vec();
                    input.splice(at..at, copy);
                }
                _ => input.truncate(at),
            }
        }
        let outcome = std::panic::catch_unwind(|| {
            pushbench::scenario::from_bytes(&input, "mutant.toml", "mutant", &env)
                .map(|s| format!("{s:?}"))
                .map_err(|e| e.to_string())
        });
        assert!(
            outcome.is_ok(),
            "mutant {i} panicked; add it to tests/corpus/: {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}
