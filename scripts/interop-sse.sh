#!/usr/bin/env bash
# Server-sent events against independent implementations, both sides:
#   1. pushbench's sse model against an `aiohttp-sse` server (JSON events with a timestamp and
#      a sequence, a multi-line event, comments, retry): every event parsed, no gaps;
#   2. Node's `eventsource` package (v2) reading `pushbench serve ws`'s /events/{subscriber}
#      stream, checking ids and data, reconnecting by itself when the server ends the stream.
# Needs python3 with `pip install aiohttp aiohttp-sse` (PYTHON=/path/to/venv/bin/python for
# another interpreter), node and npm (installs `eventsource` into a temporary directory); not
# part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
PB=$PWD/target/release/pushbench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PY=${PYTHON:-python3}
"$PY" -c "import aiohttp, aiohttp_sse" 2>/dev/null || { echo "pip install aiohttp aiohttp-sse first"; exit 2; }
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PY" scripts/interop/sse_server.py "$PORT" 20 12 & PYS=$!
trap 'kill $PYS 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do
  "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
  sleep 0.1
done
cat > "$WORK/sse.toml" <<TOML
name = "interop-sse"
[workload]
events_per_second = 1
subscribers = 20
duration = "3s"
[sse]
url = "http://127.0.0.1:$PORT/events/{subscriber}"
timestamp_field = "/ts"
sequence_field = "/seq"
TOML
"$PB" run "$WORK/sse.toml" --progress off --out "$WORK/sse" | grep -E "^(delivered|failed|gaps|latency p99 )"
"$PY" - "$WORK/sse/summary.json" <<'PYCHECK'
import json, sys
m = json.load(open(sys.argv[1]))["models"][0]
s = m["sse"]
assert m["delivered"] > 500 and s["gaps"] == 0 and s["reordered"] == 0, (m["delivered"], s)
assert sum(m["errors"].values()) == 0, m["errors"]
print(f"pushbench sse -> aiohttp-sse: {m['delivered']} events parsed, {s['gaps']} gaps, "
      f"latency p50 {m['latency_us']['p50']} us from the server's timestamp")
PYCHECK
kill $PYS 2>/dev/null || true

(cd "$WORK" && npm install --silent --no-audit --no-fund eventsource@2 >/dev/null)
export NODE_PATH=$WORK/node_modules
"$PB" serve ws --listen 127.0.0.1:0 > "$WORK/server.log" 2>&1 & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do grep -q "listening on" "$WORK/server.log" && break; sleep 0.1; done
# "pushbench websocket server listening on ws://ADDR control ADDR"
read -r PORT CONTROL < <(sed -n 's/.*ws:\/\/[^:]*:\([0-9]*\) control [^:]*:\([0-9]*\).*/\1 \2/p' "$WORK/server.log")
node scripts/interop/sse_client.js "$PORT" "$CONTROL"
