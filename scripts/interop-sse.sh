#!/usr/bin/env bash
# Server-sent events against an independent client: Node's `eventsource` package (v2) reads
# `pushbench serve ws`'s /events/{subscriber} stream, checks ids and data, and reconnects by
# itself when the server ends the stream. Needs node and npm (installs `eventsource` into a
# temporary directory); not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
PB=$PWD/target/release/pushbench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm install --silent --no-audit --no-fund eventsource@2 >/dev/null)
export NODE_PATH=$WORK/node_modules
"$PB" serve ws --listen 127.0.0.1:0 > "$WORK/server.log" 2>&1 & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do grep -q "listening on" "$WORK/server.log" && break; sleep 0.1; done
# "pushbench websocket server listening on ws://ADDR control ADDR"
read -r PORT CONTROL < <(sed -n 's/.*ws:\/\/[^:]*:\([0-9]*\) control [^:]*:\([0-9]*\).*/\1 \2/p' "$WORK/server.log")
node scripts/interop/sse_client.js "$PORT" "$CONTROL"
