#!/usr/bin/env bash
# Webhooks over TLS against an independent receiver: aiohttp over Python's ssl (OpenSSL),
# verifying every delivery with the `standardwebhooks` package. pushbench trusts the receiver
# through tls.ca_file (a CA and leaf made here with openssl), keep-alive and fresh connections.
# Needs python3 with `pip install aiohttp standardwebhooks` (PYTHON=/path/to/venv/bin/python to
# use another interpreter) and openssl; not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
PB=$PWD/target/release/pushbench
PY=${PYTHON:-python3}
"$PY" -c "import aiohttp, standardwebhooks" 2>/dev/null || { echo "pip install aiohttp standardwebhooks first"; exit 2; }
WORK=$(mktemp -d)
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
scripts/make-test-cert.sh "$WORK"
export WEBHOOK_SECRET="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"$PY" scripts/interop/tls_receiver.py "$PORT" "$WORK/leaf.crt" "$WORK/leaf.key" 60 & RECV=$!
trap 'kill $RECV 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do
  "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
  sleep 0.1
done
total=0
for connection in keepalive fresh; do
  cat > "$WORK/$connection.toml" <<TOML
name = "interop-tls-$connection"
[workload]
events_per_second = 200
subscribers = 50
duration = "2s"
[webhook]
url = "https://127.0.0.1:$PORT/hooks/{subscriber}"
tls = { ca_file = "$WORK/ca.crt" }
connection = "$connection"
pool = 8
secret = "env:WEBHOOK_SECRET"
TOML
  echo "== $connection"
  "$PB" run "$WORK/$connection.toml" --progress off --out "$WORK/$connection" |
    grep -E "^(events|delivered|failed|TLS)"
  total=$((total + $("$PY" -c "import json; print(json.load(open('$WORK/$connection/summary.json'))['models'][0]['delivered'])")))
done
counts=$("$PY" -c "import ssl, urllib.request; c = ssl.create_default_context(cafile='$WORK/ca.crt'); print(urllib.request.urlopen('https://127.0.0.1:$PORT/count', context=c).read().decode())")
echo "receiver: $counts; pushbench delivered $total"
"$PY" - "$counts" "$total" <<'PY'
import json, sys
c, total = json.loads(sys.argv[1]), int(sys.argv[2])
assert c["refused"] == 0, c
assert c["verified"] == total, (c, total)
print("ok: every delivery arrived over TLS and verified with standardwebhooks")
PY
