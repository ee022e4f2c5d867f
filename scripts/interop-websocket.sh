#!/usr/bin/env bash
# WebSocket interoperability with an independent implementation (Python `websockets`):
#   1. pushbench's client fleet (echo mode, pings) against a `websockets` echo server;
#   2. a `websockets` client (binary 0..200 KB, text, ping, a refused path) against
#      `pushbench serve ws`.
# Needs python3 with `pip install websockets`; not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
PB=$PWD/target/release/pushbench
python3 -c "import websockets" 2>/dev/null || { echo "pip install websockets first"; exit 2; }
WORK=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PORT=$(free_port)
python3 scripts/interop/echo_server.py "$PORT" 30 & PY=$!
trap 'kill $PY 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 1
cat > "$WORK/echo.toml" <<TOML
name = "interop-echo"
[workload]
events_per_second = 500
subscribers = 50
duration = "3s"
[websocket]
url = "ws://127.0.0.1:$PORT/any/{subscriber}"
mode = "echo"
ping_interval = "500ms"
TOML
"$PB" run "$WORK/echo.toml" --progress off --out "$WORK/echo" | grep -E "events|delivered|failed|pong RTT"
kill $PY

PORT=$(free_port)
"$PB" serve ws --listen "127.0.0.1:$PORT" > "$WORK/server.log" 2>&1 & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 0.5
python3 scripts/interop/client.py "$PORT"
