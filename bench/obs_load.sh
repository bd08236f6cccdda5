#!/usr/bin/env bash
# What observability costs on GET /api/protected (wrk, loopback): off, with
# METRICS_ADDR, with OTLP traces of every request, with 1% sampled. A local
# sink (otlp_sink.py) answers the exports. Needs a release build and wrk:
#   cargo build --release -p authd && bench/obs_load.sh [target/release/authd]
set -euo pipefail
bin=${1:-target/release/authd}
port=3950
work=$(mktemp -d)
python3 "$(dirname "$0")/otlp_sink.py" 4318 & sink=$!
trap 'kill $sink $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port/api"
run() { # label, env...
  label=$1; shift
  env API_ADDR=127.0.0.1:$port WS_ADDR=127.0.0.1:$((port+1)) COOKIE_SECURE=false \
    DATABASE_URL="sqlite://$work/authd.db?mode=rwc" PRIVATE_KEY_PATH=$work/private.pem PUBLIC_KEY_PATH=$work/public.pem \
    LOGIN_MAX_FAILURES=1000000 RUST_LOG=warn "$@" "$bin" serve >>"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "$base/health" >/dev/null && break; sleep 0.2; done
  curl -sf "$base/register" -H 'content-type: application/json' -d '{"username":"bench","password":"bench password 1"}' >/dev/null || true
  token=$(curl -sf "$base/login" -H 'content-type: application/json' -d '{"username":"bench","password":"bench password 1"}' | sed 's/.*"accessToken":"\([^"]*\)".*/\1/')
  echo "== $label"
  wrk -t2 -c64 -d${SECS:-10}s --latency -H "Authorization: Bearer $token" "$base/protected" | grep -E 'Requests/sec|99%|Non-2xx' || true
  echo "RSS $(awk '/VmRSS/ {print $2}' /proc/$pid/status) KiB"
  if [ -n "${SHOW_METRICS:-}" ]; then curl -s http://127.0.0.1:9465/metrics | grep -E '^authd_http_requests_total' | head -3; fi
  kill $pid; wait $pid 2>/dev/null || true
}
for round in ${ROUNDS:-1 2}; do
run "off (round $round)"
SHOW_METRICS=1 run "METRICS_ADDR (round $round)" METRICS_ADDR=127.0.0.1:9465
run "METRICS_ADDR + OTLP traces (round $round)" METRICS_ADDR=127.0.0.1:9465 OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318
run "METRICS_ADDR + OTLP traces sampled 1% (round $round)" METRICS_ADDR=127.0.0.1:9465 OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01
done
grep -ci "error" "$work/server.log" || true
