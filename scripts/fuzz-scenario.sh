#!/usr/bin/env bash
# Fuzzes the scenario loader (fuzz/fuzz_targets/scenario_parse.rs) with cargo-fuzz, seeded with
# the malformed files of tests/corpus/ and the embedded quick scenario. Not part of `cargo test`
# or CI. cargo-fuzz needs nightly flags; on a stable toolchain RUSTC_BOOTSTRAP=1 allows them.
#   scripts/fuzz-scenario.sh [SECONDS]      (default 300)
# Needs: cargo install cargo-fuzz, and a C++ compiler (libFuzzer is built from source).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
mkdir -p fuzz/corpus/scenario_parse
cp tests/corpus/*.toml scenarios/quick.toml fuzz/corpus/scenario_parse/
RUSTC_BOOTSTRAP=1 cargo fuzz run scenario_parse -- \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
# A crash leaves its input in fuzz/artifacts/scenario_parse/: copy it into tests/corpus/ with
# the problem it should give in tests/scenario_corpus.rs, then fix the parser.
