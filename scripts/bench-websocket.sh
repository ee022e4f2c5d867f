#!/usr/bin/env bash
# WebSocket scale and speed on this machine, all on loopback with the built-in server.
#
#   scripts/bench-websocket.sh [CONNECTIONS=100000] [PUSH_CONNECTIONS=50000] [PUSH_RATE=20000]
#
# (a) hold CONNECTIONS idle connections: time to establish, connections/s, memory per
#     connection on each side (RSS growth / connections), failures;
# (b) push PUSH_RATE events/s for 10 s to PUSH_CONNECTIONS connections: delivered/s, gaps,
#     latency percentiles from the intended time;
# (c) echo with 100 connections at increasing open-loop rates, then closed loop (shape = "max":
#     64 messages pipelined per connection, the way tcpkali streams), and tcpkali's figure on
#     the same server when tcpkali is installed (no Debian package; build it outside the repo
#     and put it on PATH, or this part skips it);
# (d) push past capacity: 2,000 connections, 64-byte events, offered at each rate of
#     OVERLOAD_RATES (default "150000 600000", both beyond what 2 cores deliver): the achieved
#     rate must hold as the offer grows, every event accounted, and the summary must say the
#     generator saturated.
# SKIP_SCALE=1 skips (a) and (b), SKIP_ECHO=1 skips (c), SKIP_OVERLOAD=1 skips (d).
# MODEL=sse runs (a), (b) and (d) with server-sent event streams instead ([sse]; no echo);
# MODEL=longpoll with long polls ([longpoll], keep-alive; LONGPOLL_CONNECTION=fresh for a new
# connection per poll), reporting polls per event and events per answer too.
# TLS=1 runs every part over wss (the built-in server with a certificate made for the run;
# TLS_RESUME=0 makes every connection a full handshake) and reports the handshakes.
# Past one process's open-files limit the fleet and the server spread over processes by
# themselves; each fleet worker connects from its own loopback addresses.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-100000}
PUSH_CONNS=${2:-50000}
PUSH_RATE=${3:-20000}
CONNECT_RATE=${CONNECT_RATE:-20000}
MODEL=${MODEL:-websocket}
case "$MODEL" in
  sse) PING_LINE=''; SKIP_ECHO=1 ;;
  longpoll) PING_LINE="connection = \"${LONGPOLL_CONNECTION:-keepalive}\""; SKIP_ECHO=1 ;;
  *) PING_LINE='ping_interval = "30s"' ;;
esac
case "${TLS:-0}:${TLS_RESUME:-1}" in
  1:0) TLS_LINE='tls = { resume = false }' ;;
  1:*) TLS_LINE='tls = true' ;;
  *) TLS_LINE='' ;;
esac
# PUSHBENCH_BIN: a prebuilt binary (e.g. on a machine without cargo).
if [ -n "${PUSHBENCH_BIN:-}" ]; then
  PB=$PUSHBENCH_BIN
else
  cargo build --release --quiet
  PB=$PWD/target/release/pushbench
fi
echo "machine: $(nproc) cores, open files $(ulimit -n), $(uname -r)"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

summary() { # dir -> selected figures of the websocket model
  python3 - "$1/summary.json" <<'PY'
import json, sys
m = next(m for m in json.load(open(sys.argv[1]))["models"] if m["model"] in ("websocket", "sse", "longpoll"))
w = m.get("websocket") or m.get("sse") or m["longpoll"]
mem = w["memory_per_connection_bytes"]
l = m["latency_us"]
print(f"  connections held {m['connections']['peak']} of {m['connections']['target']}, "
      f"failed connects {m['connections']['failed']}, reconnects {m['connections']['reconnects']}, "
      f"fleet workers {w['fleet_workers']}, server processes {w['server_processes']}")
print(f"  all connected in {w['ramp_s']:.2f} s = {w['connects_per_s']:.0f} connections/s, "
      f"connect p50 {m['connect_us']['p50']} us p99 {m['connect_us']['p99']} us")
print(f"  memory per connection: generator {mem['generator']:.0f} B, server {mem['target']:.0f} B")
if m.get("tls"):
    t, h = m["tls"], m["tls_handshake_us"]
    print(f"  TLS {t['version']} {t['cipher']}: {t['full']} full + {t['resumed']} resumed handshakes, "
          f"handshake p50 {h['p50']} us p99 {h['p99']} us")
if m["events"]:
    print(f"  events {m['events']}, delivered {m['delivered']} ({m['achieved_rate']:.0f}/s), "
          f"lost {m['failed']}, gaps {w['gaps']}, late sends {m['late_sends']}")
    print(f"  latency from intended time: p50 {l['p50']} us, p90 {l['p90']} us, p99 {l['p99']} us, "
          f"p99.9 {l['p999']} us, max {l['max']} us")
    if w.get("polling"):
        p = w["polling"]
        print(f"  polls {p['polls']} ({p['connection']}): {p['polls_per_event']:.2f} per event, "
              f"{p['events_per_answer']:.2f} events per answer, {p['empty_answers']} empty answers; "
              f"{m['bytes_per_event']:.0f} B on the wire per event")
    print(f"  CPU per event: generator {m['resources']['generator']['cpu_s'] / max(m['delivered'],1) * 1e6:.1f} us, "
          f"server {m['resources']['target']['cpu_s'] / max(m['delivered'],1) * 1e6:.1f} us")
PY
}

if [ "${SKIP_SCALE:-0}" != 1 ]; then
echo "(a) $CONNS idle connections"
cat > "$WORK/idle.toml" <<TOML
name = "bench-idle"
[workload]
events_per_second = 1
subscribers = $CONNS
duration = "10s"
[$MODEL]
$TLS_LINE
mode = "idle"
connect_rate = $CONNECT_RATE
$PING_LINE
TOML
"$PB" run "$WORK/idle.toml" --progress off --out "$WORK/idle" > /dev/null
summary "$WORK/idle"

echo "(b) push $PUSH_RATE events/s to $PUSH_CONNS connections"
cat > "$WORK/push.toml" <<TOML
name = "bench-push"
[workload]
events_per_second = $PUSH_RATE
subscribers = $PUSH_CONNS
payload_bytes = 256
duration = "10s"
warmup = "2s"
[$MODEL]
$TLS_LINE
mode = "push"
connect_rate = $CONNECT_RATE
$PING_LINE
TOML
"$PB" run "$WORK/push.toml" --progress off --out "$WORK/push" > /dev/null
summary "$WORK/push"
fi

if [ "${SKIP_ECHO:-0}" != 1 ]; then
echo "(c) echo over 100 connections"
for rate in 20000 50000 100000 200000; do
  cat > "$WORK/echo-$rate.toml" <<TOML
name = "bench-echo"
[workload]
events_per_second = $rate
subscribers = 100
payload_bytes = 64
duration = "5s"
warmup = "1s"
[websocket]
$TLS_LINE
mode = "echo"
TOML
  "$PB" run "$WORK/echo-$rate.toml" --progress off --out "$WORK/echo-$rate" > /dev/null
  echo " offered $rate/s:"
  summary "$WORK/echo-$rate" | tail -3
done
cat > "$WORK/echo-max.toml" <<TOML
name = "bench-echo-max"
[workload]
shape = "max"
subscribers = 100
payload_bytes = 64
duration = "5s"
warmup = "1s"
[websocket]
$TLS_LINE
mode = "echo"
TOML
"$PB" run "$WORK/echo-max.toml" --progress off --out "$WORK/echo-max" > /dev/null
echo " closed loop (shape = \"max\", 64 messages in flight per connection):"
summary "$WORK/echo-max" | tail -3
if command -v tcpkali > /dev/null; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$PB" serve ws --listen "127.0.0.1:$PORT" > "$WORK/ws.log" 2>&1 &
  SERVER=$!
  sleep 0.5
  tcpkali --websocket --ws-path /ws/1 -c 100 -m "$(head -c 64 /dev/zero | tr '\0' x)" -T 10s "127.0.0.1:$PORT" | tail -5
  kill "$SERVER"
else
  echo " tcpkali not installed: skipped (no Debian package; build it outside the repo to compare)"
fi
fi

if [ "${SKIP_OVERLOAD:-0}" != 1 ]; then
echo "(d) push past capacity: 2000 connections, 64-byte events"
for rate in ${OVERLOAD_RATES:-150000 600000}; do
  cat > "$WORK/over-$rate.toml" <<TOML
name = "bench-push-overload"
[workload]
events_per_second = $rate
subscribers = 2000
payload_bytes = 64
duration = "5s"
warmup = "1s"
[$MODEL]
$TLS_LINE
mode = "push"
$PING_LINE
TOML
  "$PB" run "$WORK/over-$rate.toml" --progress off --out "$WORK/over-$rate" > /dev/null || true
  echo " offered $rate/s:"
  summary "$WORK/over-$rate" | tail -3
  python3 - "$WORK/over-$rate" <<'PY'
import csv, json, sys
d = sys.argv[1]
m = next(m for m in json.load(open(f"{d}/summary.json"))["models"] if m["model"] in ("websocket", "sse", "longpoll"))
rows = [r for r in csv.DictReader(open(f"{d}/timeseries.csv")) if r["model"] == m["model"]]
offered = sum(int(r["offered"]) for r in rows)
ended = sum(int(r["delivered"]) + int(r.get("failed") or 0) for r in rows)
s = m.get("saturation") or {}
print(f"  accounted: events {m['events']} = delivered {m['delivered']} + failed {m['failed']}: "
      f"{m['delivered'] + m['failed'] == m['events']}; timeseries offered {offered}, ended {ended}")
print(f"  saturation: generator {s.get('generator')}, {s.get('reason', '-')}")
PY
done
fi
