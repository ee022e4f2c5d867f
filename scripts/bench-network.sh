#!/usr/bin/env bash
# The emulated network ([network]): does the physics come out, do loss and bandwidth behave like
# a network, and is the link fast enough not to be the story? Needs root (CAP_NET_ADMIN and
# CAP_SYS_ADMIN, /dev/net/tun, ip); prints one table per part, with the analytic expectation
# beside each measured figure.
#
#   scripts/bench-network.sh [PARTS]       (default: "physics loss bandwidth speed")
#   RTT=40ms  SECONDS_PER_RUN=5  ROUNDS=3 (speed only: alternating runs with and without the link)
#
#   physics    every model at rtt = RTT, plaintext: webhook keep-alive and fresh; fresh over TLS
#              1.3 with a full handshake each time (resume = false) and resumed (0-RTT is never
#              sent); WebSocket push, server-sent events, long polling. Latency p50 against the
#              round trips each should pay; the TCP connect against one RTT.
#   loss       loss = 0.02 each way at rtt = RTT, keep-alive webhook and WebSocket push: p50
#              stays at half a round trip, p99 shows retransmissions (past p50 + the kernel's
#              minimum RTO, 200 ms), and nothing is lost at the application level.
#   bandwidth  bandwidth = 10Mbit (queue 64 KiB), 16 KiB webhooks in a closed loop: bytes per
#              second carried against 10 Mbit/s, and the saturation line naming the link.
#   speed      rtt = 0 through the link against the same run on loopback (keep-alive webhooks,
#              closed loop, 64 connections, 1 KiB): the ratio of their rates, the link's own
#              delay (p50/p99) and its CPU per packet. ROUNDS alternations; the median ratio.
set -euo pipefail
cd "$(dirname "$0")/.."

PARTS=${1:-physics loss bandwidth speed}
RTT=${RTT:-40ms}
SECS=${SECONDS_PER_RUN:-5}
ROUNDS=${ROUNDS:-3}
if [ "$(id -u)" != 0 ]; then
  echo "bench-network.sh needs root: the emulated link is a network namespace and TUN devices" >&2
  exit 2
fi
cargo build --release --quiet
PB=$PWD/target/release/pushbench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# run NAME TOML: runs a scenario, leaves its results in $WORK/NAME.
run() {
  printf '%s\n' "$2" > "$WORK/$1.toml"
  "$PB" run "$WORK/$1.toml" --out "$WORK/$1" --progress off > "$WORK/$1.log" 2>&1 || {
    echo "run $1 failed:" >&2
    tail -5 "$WORK/$1.log" >&2
    return 1
  }
}

# fig NAME MODEL EXPR: a Python expression over the model's summary entry `m`.
fig() {
  python3 - "$WORK/$2/summary.json" "$1" "$3" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
m = next(x for x in s["models"] if x["model"] == sys.argv[2])
print(eval(sys.argv[3]))
EOF
}

RTT_MS=$(python3 -c "import re,sys; v,u=re.fullmatch(r'([0-9.]+)(ms|s)','$RTT').groups(); print(float(v)*(1000 if u=='s' else 1))")

workload() { # rate subscribers payload
  printf '[workload]\nevents_per_second = %s\nsubscribers = %s\npayload_bytes = %s\nduration = "%ss"\nwarmup = "1s"\n' "$1" "$2" "$3" "$SECS"
}

physics() {
  local net="[network]
rtt = \"$RTT\""
  run push "name = \"push\"
$(workload 200 200 512)
$net
[webhook]
url = \"builtin\"
connection = \"keepalive\"
pool = 32
[websocket]
url = \"builtin\"
mode = \"push\"
connect_rate = 1000
[sse]
url = \"builtin\"
mode = \"push\"
connect_rate = 1000
[longpoll]
url = \"builtin\"
hold = \"20s\"
connection = \"keepalive\"
connect_rate = 1000"
  run fresh "name = \"fresh\"
$(workload 100 200 512)
$net
[webhook]
url = \"builtin\"
connection = \"fresh\"
pool = 64"
  run tlsfull "name = \"tlsfull\"
$(workload 100 200 512)
$net
[webhook]
url = \"builtin\"
tls = { resume = false }
connection = \"fresh\"
pool = 64"
  run tlsresumed "name = \"tlsresumed\"
$(workload 100 200 512)
$net
[webhook]
url = \"builtin\"
tls = true
connection = \"fresh\"
pool = 64"
  # An event every 25 ms per subscriber: shorter than the re-poll (the answer's half round
  # trip back plus the next poll's half on the way in), so events wait for it.
  run repoll "name = \"repoll\"
$(workload 200 5 512)
$net
[longpoll]
url = \"builtin\"
hold = \"20s\"
connection = \"keepalive\"
connect_rate = 100"
  echo
  echo "physics at rtt $RTT (plaintext unless named; latency from the intended time; p50 / p99)"
  printf '%-44s %14s %22s %10s\n' "delivery" "expected" "measured p50 / p99" "p50/expect"
  row() { # label rtts dir model
    local exp p50 p99
    exp=$(python3 -c "print(round($2*$RTT_MS,2))")
    p50=$(fig "$4" "$3" 'm["latency_us"]["p50"]/1000')
    p99=$(fig "$4" "$3" 'm["latency_us"]["p99"]/1000')
    printf '%-44s %11s ms %10.2f / %7.2f ms %9.2fx\n' "$1" "$exp" "$p50" "$p99" "$(python3 -c "print($p50/$exp)")"
  }
  row "webhook, keep-alive (0.5 RTT)" 0.5 push webhook
  row "webhook, fresh: connect + request (1.5 RTT)" 1.5 fresh webhook
  row "webhook, fresh TLS 1.3 full (2.5 RTT)" 2.5 tlsfull webhook
  row "webhook, fresh TLS 1.3 resumed (2.5 RTT)" 2.5 tlsresumed webhook
  row "WebSocket push (0.5 RTT)" 0.5 push websocket
  row "server-sent events (0.5 RTT)" 0.5 push sse
  row "long polling, answer to a held poll (0.5 RTT)" 0.5 push longpoll
  local c
  c=$(fig webhook fresh 'm["connect_us"]["p50"]/1000')
  printf '%-44s %11s ms %10.2f ms %19.2fx\n' "TCP connect (1 RTT)" "$RTT_MS" "$c" "$(python3 -c "print($c/$RTT_MS)")"
  echo "TLS handshakes full / resumed: full run $(fig webhook tlsfull '"%d / %d" % (m["tls"]["full"], m["tls"]["resumed"])'), resumed run $(fig webhook tlsresumed '"%d / %d" % (m["tls"]["full"], m["tls"]["resumed"])')"
  echo "long polling: polls per event $(fig longpoll push 'round(m["longpoll"]["polling"]["polls_per_event"],2)')"
  echo "long polling, an event every 25 ms per subscriber (re-polls in the way: 0.5 to 1.5 RTT):" \
    "p50 $(fig longpoll repoll 'm["latency_us"]["p50"]/1000') ms, p99 $(fig longpoll repoll 'm["latency_us"]["p99"]/1000') ms," \
    "$(fig longpoll repoll 'round(m["longpoll"]["polling"]["events_per_answer"],2)') events per answer"
}

loss() {
  run loss "name = \"loss\"
$(workload 200 200 512)
[network]
rtt = \"$RTT\"
loss = 0.02
[webhook]
url = \"builtin\"
connection = \"keepalive\"
pool = 32
timeout = \"30s\"
[websocket]
url = \"builtin\"
mode = \"push\"
connect_rate = 1000"
  echo
  echo "loss 2% each way at rtt $RTT: retransmission tails, nothing lost above TCP"
  printf '%-12s %10s %10s %12s %10s %10s %16s\n' model p50 p99 "p50+200ms" failed lost "link lost u/d"
  for m in webhook websocket; do
    printf '%-12s %7.2f ms %7.2f ms %9.2f ms %10s %10s %16s\n' "$m" \
      "$(fig $m loss 'm["latency_us"]["p50"]/1000')" "$(fig $m loss 'm["latency_us"]["p99"]/1000')" \
      "$(fig $m loss 'm["latency_us"]["p50"]/1000+200')" "$(fig $m loss 'm["failed"]')" \
      "$(fig $m loss 'm.get("websocket",{}) and m["websocket"]["gaps"] or 0')" \
      "$(fig $m loss '"%d / %d" % (m["network"]["up"]["lost"], m["network"]["down"]["lost"])')"
  done
}

bandwidth() {
  run bw "name = \"bw\"
[workload]
shape = \"max\"
subscribers = 100
payload_bytes = 16384
duration = \"${SECS}s\"
warmup = \"1s\"
[network]
bandwidth = \"10Mbit\"
[webhook]
url = \"builtin\"
connection = \"keepalive\"
pool = 16
signature = \"none\"
retry = { attempts = 1 }"
  echo
  echo "bandwidth 10 Mbit/s (1.25 MB/s) each way, 16 KiB webhooks, closed loop"
  echo "  carried up: $(fig webhook bw 'round(m["network"]["up"]["bytes_per_s"]/1e6,3)') MB/s ($(fig webhook bw 'round(m["network"]["up"]["bytes_per_s"]*8/1e7,3)') of the rate), bottleneck busy $(fig webhook bw 'round(m["network"]["up"]["utilization"],3)'), queue drops $(fig webhook bw 'm["network"]["up"]["queue_drops"]')"
  echo "  delivered $(fig webhook bw 'round(m["achieved_rate"],1)')/s x $(fig webhook bw 'round(m["bytes_per_event"])') B on the wire = $(fig webhook bw 'round(m["achieved_rate"]*m["bytes_per_event"]/1e6,3)') MB/s"
  echo "  saturation: $(fig webhook bw 'm["saturation"]["reason"]')"
}

speed() {
  local body="[workload]
shape = \"max\"
subscribers = 1000
payload_bytes = 1024
duration = \"${SECS}s\"
warmup = \"1s\"
[webhook]
url = \"builtin\"
connection = \"keepalive\"
pool = 64
signature = \"none\"
retry = { attempts = 1 }"
  echo
  echo "speed: keep-alive webhooks, closed loop, 64 connections, 1 KiB; loopback vs rtt 0 through the link"
  printf '%-6s %12s %12s %8s %18s %14s\n' round loopback "link rtt 0" ratio "link delay p50/p99" "link CPU/pkt"
  local ratios=()
  for r in $(seq 1 "$ROUNDS"); do
    run loop "name = \"loop\"
$body"
    run zero "name = \"zero\"
[network]
rtt = \"0ms\"
$body"
    local a b
    a=$(fig webhook loop 'round(m["achieved_rate"])')
    b=$(fig webhook zero 'round(m["achieved_rate"])')
    ratios+=("$(python3 -c "print(round($b/$a,3))")")
    printf '%-6s %10s/s %10s/s %8s %18s %11s us\n' "$r" "$a" "$b" "${ratios[-1]}" \
      "$(fig webhook zero '"%d / %d us" % (m["network"]["link_late_us"]["p50"], m["network"]["link_late_us"]["p99"])')" \
      "$(fig webhook zero 'round(m["network"]["cpu_ns_per_packet"]/1000,2)')"
  done
  echo "median ratio: $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
}

for p in $PARTS; do
  "$p"
done
