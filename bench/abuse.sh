#!/usr/bin/env bash
# Hostile load against the release binary on loopback (issue #13): parallel
# guesses for one user, abandoned logins, half-open connections (bench/abuse.py),
# and a flood of well-formed forged tokens with wrk while a real, cached token
# is measured. Needs wrk (apt-get install wrk) and a release build:
#   cargo build --release -p authd && bench/abuse.sh [target/release/authd]
set -euo pipefail
bin=${1:-target/release/authd}
secs=${SECS:-10}
port=${PORT:-3950}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port/api"

API_ADDR=127.0.0.1:$port WS_ADDR=127.0.0.1:$((port + 1)) COOKIE_SECURE=false \
DATABASE_URL="sqlite://$work/authd.db?mode=rwc" \
PRIVATE_KEY_PATH=$work/private.pem PUBLIC_KEY_PATH=$work/public.pem RUST_LOG=warn \
  "$bin" serve >>"$work/server.log" 2>&1 &
for _ in $(seq 150); do curl -sf "$base/health" >/dev/null && break; sleep 0.2; done
curl -sf "$base/health" >/dev/null || { echo "server did not start" >&2; cat "$work/server.log" >&2; exit 1; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; clients on the same machine"
curl -sf "$base/register" -H 'content-type: application/json' \
  -d '{"username":"bench","password":"bench password 1"}' >/dev/null
python3 "$(dirname "$0")/abuse.py" 127.0.0.1 "$port" "$work/authd.db"

token=$(curl -sf "$base/login" -H 'content-type: application/json' \
  -d '{"username":"bench","password":"bench password 1"}' | sed 's/.*"accessToken":"\([^"]*\)".*/\1/')
# Same header and claims, another signature of the same length and below the
# modulus (only its middle changes): well formed, so each one costs a full
# RS256 verification (and is never cached).
sig=${token##*.}
mid=$(( ${#sig} / 2 ))
forged="${token%.*}.${sig:0:mid}$(printf '%s' "${sig:mid:16}" | tr 'A-Za-z0-9' 'B-ZAb-za1-90')${sig:mid+16}"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $forged" "$base/protected")" = 401 ]
echo "== real token alone (4 connections)"
wrk -t1 -c4 -d"${secs}s" --latency -H "Authorization: Bearer $token" "$base/protected" | grep -E 'Requests/sec|99%'
echo "== the same during a forged-token flood (64 connections)"
wrk -t1 -c64 -d"$((secs + 2))s" -H "Authorization: Bearer $forged" "$base/protected" >"$work/flood" &
flood=$!
sleep 1
wrk -t1 -c4 -d"${secs}s" --latency -H "Authorization: Bearer $token" "$base/protected" | grep -E 'Requests/sec|99%'
wait "$flood"
echo "   flood: $(grep -E 'Requests/sec' "$work/flood")"
