#!/usr/bin/env bash
# WebSockets over TLS against an independent implementation: Node's `ws` package over https
# (Node's TLS is OpenSSL), trusted through a CA made here with openssl:
#   1. pushbench's fleet (echo mode, pings, tls.ca_file) against a `ws` echo server;
#   2. a `ws` client (binary 0..200 KB, text, ping, a refused path) against
#      `pushbench serve ws --tls-cert --tls-key`.
# Needs node and npm (installs `ws` into a temporary directory) and openssl; not part of
# `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
PB=$PWD/target/release/pushbench
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm install --silent --no-audit --no-fund ws@8 >/dev/null)
export NODE_PATH=$WORK/node_modules
scripts/make-test-cert.sh "$WORK"
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() { for _ in $(seq 50); do node -e "require('net').connect($1,'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))" && return; sleep 0.1; done; }

PORT=$(free_port)
node scripts/interop/wss_echo_server.js "$PORT" "$WORK/leaf.crt" "$WORK/leaf.key" 20 & NODE=$!
trap 'kill $NODE 2>/dev/null || true; rm -rf "$WORK"' EXIT
wait_port "$PORT"
cat > "$WORK/echo.toml" <<TOML
name = "interop-wss-echo"
[workload]
events_per_second = 500
subscribers = 50
duration = "3s"
payload_bytes = 2000
[websocket]
url = "wss://127.0.0.1:$PORT/any/{subscriber}"
tls = { ca_file = "$WORK/ca.crt" }
mode = "echo"
ping_interval = "500ms"
TOML
"$PB" run "$WORK/echo.toml" --progress off --out "$WORK/echo" |
  grep -E "^(events|delivered|failed|TLS|pong)"
python3 - "$WORK/echo/summary.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["models"][0]
assert m["events"] > 0 and m["delivered"] == m["events"], (m["events"], m["delivered"])
assert m["tls"]["full"] + m["tls"]["resumed"] == 50, m["tls"]
print(f"pushbench fleet -> node ws: {m['delivered']}/{m['events']} echoed, "
      f"{m['tls']['full']} full + {m['tls']['resumed']} resumed handshakes ({m['tls']['version']})")
PY
kill $NODE 2>/dev/null || true

PORT=$(free_port)
"$PB" serve ws --listen "127.0.0.1:$PORT" --tls-cert "$WORK/leaf.crt" --tls-key "$WORK/leaf.key" \
  > "$WORK/server.log" 2>&1 & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
wait_port "$PORT"
node scripts/interop/wss_client.js "$PORT" "$WORK/ca.crt"
