#!/usr/bin/env bash
# Webhook delivery speed: pushbench against wrk and oha on the same target, alternating (ABBA).
#
#   scripts/bench-webhook.sh [SECONDS] [ROUNDS] [CONNECTIONS]     (defaults: 10 2 64)
#   TARGET=nginx|sink  MODES="keepalive fresh ..."  BODY_BYTES=1024  OVERLOAD_RATE=400000
#   BASELINE=/path/to/an/older/pushbench   also runs that binary each round, beside this build
#                                          ("baseline" in the table): before/after figures
#
# Target (TARGET): `nginx` (the default when Debian's nginx-light is installed: one worker,
# `return 204`, keepalive_requests 100000000, started here on a free loopback port) is faster
# than every tool measured, so the figures describe the generators; `sink` is
# `pushbench serve sink`, a hyper server that reads each request and answers 204 (about 14k
# fresh connections/s here, so it, not the generator, limits the fresh mode).
# Modes (MODES), each run by every tool that supports it, in turn:
#   keepalive  closed loop, maximum rate over CONNECTIONS keep-alive connections
#   fresh      closed loop, a new TCP connection per request
#   fixed      open loop at 20,000 requests/s: achieved rate and corrected p50/p99
#              (oha with -q and --latency-correction; wrk has no rate option)
#   overload   open loop at OVERLOAD_RATE (far past capacity), keep-alive: pushbench must keep
#              delivering at its closed-loop rate and count the rest (wrk runs closed loop
#              beside it, as the yardstick)
#   overload-fresh  the same with a fresh connection per request
#   tls-keepalive, tls-fresh  keepalive and fresh over TLS (nginx target only: TLS 1.2/1.3,
#              session tickets on, a CA and leaf made here with openssl); both tools resume
#              sessions (checked with nginx's $ssl_session_reused: wrk's are resumed too)
#   tls-fresh-full  pushbench with `resume = false`, a full handshake every time (wrk has no
#              such switch: reported beside the resumed figures, without a peer)
# pushbench runs with full recording on (corrected + uncorrected histograms, counters, 1 s
# intervals) and signature "none", with BODY_BYTES JSON bodies like the peers' POST bodies.
#
# Peers: wrk from Debian's package; oha with `cargo install oha --locked` (about 17 minutes to
# build here; keep the binary, e.g. `--root /work/tools/oha`, and point OHA at it). A missing peer
# is skipped with a message.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_RUN=${1:-10}
ROUNDS=${2:-2}
CONNS=${3:-64}
FIXED_RATE=20000
OVERLOAD_RATE=${OVERLOAD_RATE:-400000}
BODY_BYTES=${BODY_BYTES:-1024}
MODES=${MODES:-keepalive fresh fixed overload overload-fresh}
NGINX=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
TARGET=${TARGET:-$([ -n "$NGINX" ] && echo nginx || echo sink)}
if [ "$TARGET" = nginx ] && [ -z "$NGINX" ]; then
  echo "nginx not found (apt-get install nginx-light): using the sink target" >&2
  TARGET=sink
fi

cargo build --release --quiet
PB=$PWD/target/release/pushbench
WRK=$(command -v wrk || true)
OHA=${OHA:-$(command -v oha || true)}
[ -z "$OHA" ] && [ -x /work/tools/oha/bin/oha ] && OHA=/work/tools/oha/bin/oha
[ -z "$WRK" ] && echo "wrk not found (apt-get install wrk): skipping wrk"
[ -z "$OHA" ] && echo "oha not found (cargo install oha --locked): skipping oha"

WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TLS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [ "$TARGET" = nginx ]; then
  # A CA and a leaf for 127.0.0.1 (rustls refuses a CA certificate as the server's own).
  scripts/make-test-cert.sh "$WORK"
  cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $WORK/body;
  server { listen 127.0.0.1:$PORT backlog=8192; location / { return 204; } }
  ssl_session_tickets on;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {
    listen 127.0.0.1:$TLS_PORT ssl backlog=8192;
    ssl_certificate $WORK/leaf.crt;
    ssl_certificate_key $WORK/leaf.key;
    location / { return 204; }
  }
}
NGINX
  "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" > "$WORK/sink.log" 2>&1 &
else
  "$PB" serve sink --listen "127.0.0.1:$PORT" > "$WORK/sink.log" 2>&1 &
fi
SINK=$!
cleanup() { kill "$SINK" 2>/dev/null || true; wait "$SINK" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
  sleep 0.1
done
echo "target: $TARGET on 127.0.0.1:$PORT, $BODY_BYTES-byte bodies" >&2
URL="http://127.0.0.1:$PORT/hooks/1"
TLS_URL="https://127.0.0.1:$TLS_PORT/hooks/1"
case "$MODES" in *tls*) [ "$TARGET" = nginx ] || { echo "the tls modes need the nginx target" >&2; exit 2; } ;; esac
BODY=$(head -c "$BODY_BYTES" /dev/zero | tr '\0' x)

cat > "$WORK/keepalive.lua" <<LUA
wrk.method = "POST"
wrk.body = string.rep("x", $BODY_BYTES)
wrk.headers["Content-Type"] = "application/json"
LUA
cp "$WORK/keepalive.lua" "$WORK/fresh.lua"
echo 'wrk.headers["Connection"] = "close"' >> "$WORK/fresh.lua"
cp "$WORK/keepalive.lua" "$WORK/overload.lua"
cp "$WORK/fresh.lua" "$WORK/overload-fresh.lua"
cp "$WORK/keepalive.lua" "$WORK/tls-keepalive.lua"
cp "$WORK/fresh.lua" "$WORK/tls-fresh.lua"

scenario() { # mode -> scenario file
  local shape='shape = "max"' connection=keepalive
  case "$1" in
    fixed) shape="events_per_second = $FIXED_RATE" ;;
    overload*) shape="events_per_second = $OVERLOAD_RATE" ;;
  esac
  case "$1" in *fresh*) connection=fresh ;; esac
  local url="http://127.0.0.1:$PORT/hooks/{subscriber}" tls=""
  case "$1" in
    tls-fresh-full) url="https://127.0.0.1:$TLS_PORT/hooks/{subscriber}"
      tls="tls = { ca_file = \"$WORK/ca.crt\", resume = false }" ;;
    tls-*) url="https://127.0.0.1:$TLS_PORT/hooks/{subscriber}"
      tls="tls = { ca_file = \"$WORK/ca.crt\" }" ;;
  esac
  cat > "$WORK/$1.toml" <<TOML
name = "bench-$1"
[workload]
$shape
subscribers = 1000
payload_bytes = $BODY_BYTES
duration = "${SECONDS_PER_RUN}s"
warmup = "1s"
[webhook]
url = "$url"
$tls
signature = "none"
connection = "$connection"
pool = $CONNS
retry = { attempts = 1 }
TOML
}

RESULTS=$WORK/results.tsv
: > "$RESULTS"
record() { echo -e "$1\t$2\t$3\t$4\t$5\t$6" >> "$RESULTS"; } # mode tool rate p50_us p99_us cpu_us_per_req
TIMED=(/usr/bin/time -f "%U %S" -o "$WORK/time.txt")
cpu_s() { awk '{print $1 + $2}' "$WORK/time.txt"; }

run_pushbench() {
  scenario "$1"
  run_binary "$PB" pushbench "$1" "$2"
  [ -n "${BASELINE:-}" ] && run_binary "$BASELINE" baseline "$1" "$2"
  return 0
}

run_binary() { # binary label mode round
  local out="$WORK/$2-$3-$4"
  "${TIMED[@]}" "$1" run "$WORK/$3.toml" --progress off --out "$out" > /dev/null
  python3 - "$out" "$3" "$(cpu_s)" "$2" >> "$RESULTS" <<'PY'
import csv, json, sys
d, mode, label = sys.argv[1], sys.argv[2], sys.argv[4]
m = json.load(open(f"{d}/summary.json"))["models"][0]
# The generator's CPU over the run itself (the summary's meter), not the charts and report
# that `run` renders afterwards, which /usr/bin/time would add to every request.
cpu = m["resources"]["generator"]["cpu_s"]
requests = sum(int(r["sent"]) for r in csv.DictReader(open(f"{d}/timeseries.csv")))
print(f"{mode}\t{label}\t{m['achieved_rate']:.0f}\t{m['latency_us']['p50']}\t{m['latency_us']['p99']}\t{cpu / requests * 1e6:.2f}")
rows = list(csv.DictReader(open(f"{d}/timeseries.csv")))
offered = sum(int(r["offered"]) for r in rows)
ended = sum(int(r["delivered"]) + int(r.get("failed") or 0) + int(r.get("abandoned") or 0) for r in rows)
sat = m.get("saturation") or {}
print(f"  {label} {mode}: events {m['events']} delivered {m['delivered']} failed {m['failed']} "
      f"(dropped {m['dropped']}, unfinished {m['unfinished']}) abandoned {m['abandoned']}; "
      f"timeseries offered {offered} ended {ended}; generator CPU {cpu:.1f} s; "
      f"saturation: {sat.get('reason', '-')}", file=sys.stderr)
PY
}

run_wrk() {
  [ -z "$WRK" ] && return 0
  local out rate
  local url=$URL
  case "$1" in tls-*) url=$TLS_URL ;; esac
  out=$("${TIMED[@]}" "$WRK" -t2 -c"$CONNS" -d"${SECONDS_PER_RUN}s" -s "$WORK/$1.lua" "$url")
  rate=$(echo "$out" | awk '/Requests\/sec/ {printf "%.0f", $2}')
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  record "$1" wrk "$rate" "" "" "$(python3 -c "print(f'{$(cpu_s) / $requests * 1e6:.2f}')")"
}

run_oha() {
  [ -z "$OHA" ] && return 0
  local extra=()
  [ "$1" = fresh ] && extra=(--disable-keepalive)
  [ "$1" = fixed ] && extra=(-q "$FIXED_RATE" --latency-correction)
  "${TIMED[@]}" "$OHA" -z "${SECONDS_PER_RUN}s" -c "$CONNS" --no-tui --output-format json -m POST \
    -H "Content-Type: application/json" -d "$BODY" "${extra[@]}" "$URL" > "$WORK/oha.json"
  python3 - "$WORK/oha.json" "$1" "$(cpu_s)" >> "$RESULTS" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
s = d["summary"]
requests = s["requestsPerSec"] * s["total"]
print(f"{sys.argv[2]}\toha\t{s['requestsPerSec']:.0f}\t{p['p50']*1e6:.0f}\t{p['p99']*1e6:.0f}\t{float(sys.argv[3]) / requests * 1e6:.2f}")
PY
}

run_peers() {
  # wrk cannot turn resumption off: tls-fresh-full has no peer run.
  case "$1" in fixed|tls-fresh-full) ;; *) run_wrk "$1" ;; esac
  case "$1" in overload*|tls-*) ;; *) run_oha "$1" ;; esac
}
# Odd rounds run pushbench first, even rounds last (ABBA): rates drift over a run here (the
# kernel's TIME_WAIT table fills, caches warm), and a fixed order would hand the drift to
# whichever tool always runs second.
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    echo "round $round: $mode" >&2
    if [ $((round % 2)) = 1 ]; then
      run_pushbench "$mode" "$round"
      run_peers "$mode"
    else
      run_peers "$mode"
      run_pushbench "$mode" "$round"
    fi
  done
done

python3 - "$RESULTS" "$CONNS" "$FIXED_RATE" "$BODY_BYTES" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
conns, fixed = sys.argv[2], float(sys.argv[3])
by = {}
for mode, tool, rate, p50, p99, cpu in rows:
    e = by.setdefault((mode, tool), {"rate": [], "p50": [], "p99": [], "cpu": []})
    e["rate"].append(float(rate))
    e["cpu"].append(float(cpu))
    if p50: e["p50"].append(float(p50))
    if p99: e["p99"].append(float(p99))
mean = lambda xs: statistics.mean(xs) if xs else float("nan")
print(f"\nwebhook POST, {sys.argv[4]}-byte bodies, {conns} connections, mean of rounds (runs: {[len(v['rate']) for v in by.values()][0]})")
print("(cpu = generator user+sys CPU per request, the cost that does not depend on the target)")
print(f"{'mode':<10} {'tool':<10} {'req/s':>9} {'p50 us':>8} {'p99 us':>8} {'cpu us/req':>10}  {'rates per round'}")
for (mode, tool), e in sorted(by.items()):
    print(f"{mode:<10} {tool:<10} {mean(e['rate']):>9.0f} {mean(e['p50']):>8.0f} {mean(e['p99']):>8.0f} {mean(e['cpu']):>10.2f}  {' '.join(f'{r:.0f}' for r in e['rate'])}")
print("\nratios pushbench / peer (req/s):")
for mode in ["keepalive", "fresh", "fixed", "overload", "overload-fresh", "tls-keepalive", "tls-fresh"]:
    pb = by.get((mode, "pushbench"))
    for peer in ["wrk", "oha"]:
        p = by.get((mode, peer))
        if pb and p:
            print(f"  {mode:<10} vs {peer:<4} {mean(pb['rate']) / mean(p['rate']):.3f}")
for (mode, tool), base in sorted(by.items()):
    pb = by.get((mode, "pushbench"))
    if tool == "baseline" and pb:
        print(f"  {mode:<10} this build vs baseline {mean(pb['rate']) / mean(base['rate']):.3f} "
              f"(CPU {mean(pb['cpu']):.2f} vs {mean(base['cpu']):.2f} us/req)")
full, res = by.get(("tls-fresh-full", "pushbench")), by.get(("tls-fresh", "pushbench"))
if full and res:
    print(f"  pushbench tls-fresh-full (resume = false) vs its tls-fresh (resumed): {mean(full['rate']) / mean(res['rate']):.3f}")
for mode, closed in [("overload", "keepalive"), ("overload-fresh", "fresh")]:
    o, c = by.get((mode, "pushbench")), by.get((closed, "pushbench"))
    if o and c:
        print(f"  {mode:<14} vs pushbench {closed} (shape = max): {mean(o['rate']) / mean(c['rate']):.3f}")
pb = by.get(("fixed", "pushbench"))
if pb:
    print(f"\nfixed {fixed:.0f}/s: pushbench achieved {mean(pb['rate']):.0f}/s "
          f"({(mean(pb['rate']) / fixed - 1) * 100:+.2f}% of target)")
PY
