#!/usr/bin/env bash
# Long polling against an independent implementation, both sides:
#   1. pushbench's longpoll model against a long-polling server written on aiohttp
#      (scripts/interop/longpoll_server.py: {"events": [...]} with seq and ts, the cursor in the
#      query): every event read once, no gaps, no duplicates, no errors;
#   2. an aiohttp client polling `pushbench serve ws`'s /poll/{subscriber} while events are
#      published over its control port (scripts/interop/longpoll_client.py).
# Needs python3 with `pip install aiohttp` (PYTHON=/path/to/venv/bin/python for another
# interpreter); not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
PB=$PWD/target/release/pushbench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PY=${PYTHON:-python3}
"$PY" -c "import aiohttp" 2>/dev/null || { echo "pip install aiohttp first"; exit 2; }
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PY" scripts/interop/longpoll_server.py "$PORT" 20 2 12 & PYS=$!
trap 'kill $PYS 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do
  "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
  sleep 0.1
done
cat > "$WORK/lp.toml" <<TOML
name = "interop-longpoll"
[workload]
events_per_second = 1
subscribers = 20
duration = "3s"
[longpoll]
url = "http://127.0.0.1:$PORT/poll/{subscriber}?cursor={cursor}"
hold = "2s"
events_field = "/events"
timestamp_field = "/ts"
sequence_field = "/seq"
TOML
"$PB" run "$WORK/lp.toml" --progress off --out "$WORK/lp" | grep -E "^(delivered|failed|gaps|latency p99 |polls)"
"$PY" - "$WORK/lp/summary.json" <<'PYCHECK'
import json, sys
m = json.load(open(sys.argv[1]))["models"][0]
s = m["longpoll"]
p = s["polling"]
assert m["delivered"] > 500 and s["gaps"] == 0 and s["reordered"] == 0, (m["delivered"], s)
assert sum(m["errors"].values()) == 0, m["errors"]
print(f"pushbench longpoll -> aiohttp server: {m['delivered']} events read, {s['gaps']} gaps, "
      f"{s['reordered']} duplicates, {p['polls_per_event']:.2f} polls per event, "
      f"latency p50 {m['latency_us']['p50']} us from the server's timestamp")
PYCHECK
kill $PYS 2>/dev/null || true

"$PB" serve ws --listen 127.0.0.1:0 > "$WORK/server.log" 2>&1 & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do grep -q "listening on" "$WORK/server.log" && break; sleep 0.1; done
read -r PORT CONTROL < <(sed -n 's/.*ws:\/\/[^:]*:\([0-9]*\) control [^:]*:\([0-9]*\).*/\1 \2/p' "$WORK/server.log")
"$PY" scripts/interop/longpoll_client.py "$PORT" "$CONTROL"
