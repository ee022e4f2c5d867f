#!/usr/bin/env bash
# Writes a CA (DIR/ca.crt) and a leaf for 127.0.0.1 signed by it (DIR/leaf.crt, DIR/leaf.key)
# with openssl, for TLS benchmarks and interop checks against other servers. rustls refuses a
# CA certificate as a server's own, so a bare self-signed certificate will not do.
set -euo pipefail
DIR=$1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
  -subj "/CN=pushbench test CA" -keyout "$DIR/ca.key" -out "$DIR/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$DIR/leaf.key" -out "$DIR/leaf.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$DIR/leaf.ext"
openssl x509 -req -in "$DIR/leaf.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
  -CAcreateserial -days 7 -extfile "$DIR/leaf.ext" -out "$DIR/leaf.crt" 2>/dev/null
